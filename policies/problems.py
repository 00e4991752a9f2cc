"""What is wrong with a catalogue, said so that a marketer can find and fix it.

Every problem names the file, where in it (the offer, group or policy with its entry number, the field or
rule) and what is wrong (for a rule: the column in the expression). The loader collects them all rather
than stopping at the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from decisioning.rules import RuleError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a catalogue.

    >>> str(Problem("demo/offers.yaml", "offer card_gold (offers.yaml entry 3)", "unknown group 'crads'"))
    "demo/offers.yaml: offer card_gold (offers.yaml entry 3): unknown group 'crads'"
    """

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.location, self.message) if part)


class CatalogueError(Exception):
    """A catalogue that cannot be loaded; `problems` lists everything that is wrong, not only the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__("\n".join([f"invalid catalogue ({count}):", *map(str, self.problems)]))


def entry_location(kind: str, ident: object, file_name: str, index: int) -> str:
    """How problems name an entry of a list: `offer card_gold (offers.yaml entry 3)`; entries count from 1.

    >>> entry_location("offer", "card_gold", "offers.yaml", 2)
    'offer card_gold (offers.yaml entry 3)'
    """
    name = ident if isinstance(ident, str) and ident else "without id"
    return f"{kind} {name} ({file_name} entry {index + 1})"


def rule_message(err: RuleError) -> str:
    """A rule error on one line: the message, the column when known, and the expression.

    >>> rule_message(error)  # doctest: +SKIP
    "unknown feature 'agee' (column 1): agee >= 18"
    """
    column = f" (column {err.position})" if err.position is not None else ""
    return f"{err.message}{column}: {err.expression}"


def validation_messages(err: ValidationError, fields: Iterable[str] = ()) -> list[str]:
    """Pydantic's errors as short messages, each prefixed with the field path it concerns.

    `fields` are the field names the schema knows, used to suggest a fix for a misspelt field:
    `unknown field 'budget.limitt' (did you mean 'limit'?)`.
    """
    return [_one_message(e, tuple(fields)) for e in err.errors(include_url=False)]


def _one_message(error: dict, fields: tuple[str, ...]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field '{path}'{_suggestion(str(error['loc'][-1]), fields)}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def _suggestion(name: str, fields: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, fields, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def closest(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a known name is close to `name`, else an empty string.

    >>> closest("crads", ["cards", "loans"])
    " (did you mean 'cards'?)"
    """
    return _suggestion(name, tuple(known))
