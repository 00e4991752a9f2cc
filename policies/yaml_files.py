"""Reading the catalogue's YAML files: one safe, strict reader for the catalogue loader and `events.yaml`.

Strict because plain YAML keeps the last of two equal keys and silently drops a rule; a file that does
not parse is reported with its line and column, as a `Problem`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policies.problems import Problem

# libyaml's parser when the wheel has it: parsing is most of the time a catalogue takes to load.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """A safe loader that refuses duplicate keys: plain YAML keeps the last one and silently drops a rule."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the schema later
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, display: str) -> tuple[Any, Problem | None]:
    """The parsed file, or None and the problem (named `display`) when it cannot be read or parsed.

    >>> read_yaml(Path("policies/demo/catalogue.yaml"), "catalogue.yaml")[1] is None
    True
    """
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader), None  # a SafeLoader
    except yaml.YAMLError as err:
        return None, Problem(display, _mark(err), _yaml_message(err))
    except (OSError, UnicodeDecodeError) as err:
        return None, Problem(display, "", f"cannot read the file: {err}")


def _mark(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    return f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


def _yaml_message(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None)
    return f"invalid YAML: {problem}" if problem else f"invalid YAML: {err}"
