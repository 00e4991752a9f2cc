"""Load a catalogue directory: read the YAML, validate it, compile it into a `Catalogue`.

A catalogue directory holds:
- `catalogue.yaml`: channels, time zone, arbitration settings and offer groups;
- `offers.yaml` and/or several `offers*.yaml`: the offers (read in file-name order);
- `policies.yaml` (optional): the contact policies;
- `features.yaml`: the feature schema that rules are checked against;
- `events.yaml` (optional): which customer events update which real-time features. The event processor
  loads it (`policies.events`), but it is part of the catalogue's version and of its validation: a changed
  event rule changes what decisions read.
- `triggers.yaml` (optional): which conditions, made true by an event, start an outbound decision
  (`policies.triggers`; compiled into `Catalogue.triggers`, checked once the rest of the catalogue compiles).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from decisioning.catalogue import Catalogue, FeatureType
from policies.compiler import Entry, Sources, compile_catalogue, feature_spec
from policies.events import EVENTS_FILE, check_event_rules
from policies.problems import CatalogueError, Problem, entry_location, validation_messages
from policies.schema import (
    FIELD_NAMES,
    CatalogueFile,
    FeatureEntry,
    FeaturesFile,
    GroupSpec,
    OffersFile,
    OfferSpec,
    PoliciesFile,
    PolicySpec,
)
from policies.triggers import TRIGGERS_FILE, check_triggers
from policies.yaml_files import read_yaml

CATALOGUE_FILE = "catalogue.yaml"
POLICIES_FILE = "policies.yaml"
FEATURES_FILE = "features.yaml"
OFFERS_PATTERN = "offers*.yaml"

M = TypeVar("M", bound=BaseModel)


def load_catalogue(directory: str | Path) -> Catalogue:
    """Load and compile the catalogue in `directory`; raise `CatalogueError` listing every problem.

    >>> catalogue = load_catalogue("policies/demo")
    >>> catalogue.offer("card_gold").group
    'cards'
    """
    catalogue, problems, _ = _build(Path(directory))
    if catalogue is None:
        raise CatalogueError(problems)
    return catalogue


def validate_catalogue(directory: str | Path) -> list[Problem]:
    """Every problem of the catalogue in `directory`, its `events.yaml` included (empty when both load).

    >>> validate_catalogue("policies/demo")
    []
    """
    directory = Path(directory)
    catalogue, problems, sources = _build(directory)
    if sources is None or "feature" in sources.unreadable:
        # Without a feature schema every update would be "unknown": fixing features.yaml comes first.
        return problems
    specs = catalogue.features if catalogue else [feature_spec(e.spec) for e in sources.features]
    return problems + check_event_rules(directory, specs)[1]


def catalogue_files(directory: str | Path) -> list[Path]:
    """The files the catalogue is made of, sorted by name (missing optional files are left out)."""
    directory = Path(directory)
    names = {CATALOGUE_FILE, POLICIES_FILE, FEATURES_FILE, EVENTS_FILE, TRIGGERS_FILE}
    names |= {p.name for p in directory.glob(OFFERS_PATTERN)}
    return sorted(p for name in names if (p := directory / name).is_file())


def catalogue_version(directory: str | Path) -> str:
    """A content hash of the catalogue's files (names and contents): the same files give the same version.

    >>> len(catalogue_version("policies/demo"))
    12
    """
    digest = hashlib.sha256()
    for path in catalogue_files(directory):
        content = path.read_bytes()
        # Lengths make the encoding unambiguous: no two different file sets hash the same bytes.
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:12]


def _build(directory: Path) -> tuple[Catalogue | None, list[Problem], Sources | None]:
    if not directory.is_dir():
        return None, [Problem(str(directory), "", "catalogue directory not found")], None
    reader = _Reader(directory)
    sources = reader.sources()
    catalogue, problems = compile_catalogue(sources, catalogue_version(directory))
    problems = reader.problems + problems
    if catalogue is not None and not problems:
        # Triggers name channels and features: they are checked against the compiled catalogue.
        triggers, problems = check_triggers(directory, catalogue)
        catalogue = dataclasses.replace(catalogue, triggers=triggers)
    return (catalogue if not problems else None), problems, sources


class _Reader:
    """Reads and schema-validates the files of one directory, collecting problems as it goes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.problems: list[Problem] = []

    def sources(self) -> Sources:
        sources = Sources(catalogue_file=self._display(CATALOGUE_FILE))
        self._read_catalogue(sources)
        self._read_offers(sources)
        self._read_policies(sources)
        self._read_features(sources)
        return sources

    def _read_catalogue(self, sources: Sources) -> None:
        outline = self._outline(CATALOGUE_FILE, CatalogueFile, required=True)
        if outline is None:
            sources.unreadable.add("group")
        else:
            sources.settings = outline
            sources.groups = self._entries(
                CATALOGUE_FILE, outline.groups, GroupSpec, "group", sources, "groups"
            )

    def _read_offers(self, sources: Sources) -> None:
        files = sorted(p.name for p in self.directory.glob(OFFERS_PATTERN) if p.is_file())
        if not files:
            self.problems.append(Problem(self._display("offers.yaml"), "", "no offers*.yaml file found"))
        for name in files:
            outline = self._outline(name, OffersFile, required=True)
            if outline is None:
                sources.unreadable.add("offer")
            else:
                sources.offers += self._entries(name, outline.offers, OfferSpec, "offer", sources)

    def _read_policies(self, sources: Sources) -> None:
        outline = self._outline(POLICIES_FILE, PoliciesFile, required=False)
        if outline is not None:
            sources.policies = self._entries(POLICIES_FILE, outline.policies, PolicySpec, "policy", sources)

    def _read_features(self, sources: Sources) -> None:
        outline = self._outline(FEATURES_FILE, FeaturesFile, required=True)
        if outline is None:
            sources.unreadable.add("feature")
        else:
            sources.features = self._entries(
                FEATURES_FILE, outline.features, FeatureEntry, "feature", sources
            )
            sources.broken_feature_types = _broken_feature_types(outline.features, sources.broken_ids)

    def _outline(self, name: str, model: type[M], *, required: bool) -> M | None:
        """The file's top level validated (entries still raw); None when missing or invalid."""
        path = self.directory / name
        if not path.is_file():
            if required:
                self.problems.append(Problem(self._display(name), "", "file is missing"))
            return None
        raw = self._yaml(path)
        if raw is None and not required:
            return model()
        return self._validate(model, raw, self._display(name), "") if raw is not None else None

    def _entries(
        self, name: str, raw: list[Any], model: type, kind: str, sources: Sources, where: str = ""
    ) -> list[Entry]:
        """Validate every entry of a list on its own, so that one bad entry hides no other."""
        out = []
        for index, item in enumerate(raw):
            key = item.get("name" if kind == "feature" else "id") if isinstance(item, dict) else None
            location = entry_location(kind, key, f"{name} {where}".strip(), index)
            spec = self._validate(model, item, self._display(name), location)
            if spec is not None:
                out.append(Entry(spec, self._display(name), location))
            elif isinstance(key, str):
                sources.broken_ids.add(f"{kind}:{key}")
        return out

    def _validate(self, model: type[M], raw: Any, file: str, location: str) -> M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            self.problems += [Problem(file, location, m) for m in validation_messages(err, FIELD_NAMES)]
            return None

    def _yaml(self, path: Path) -> Any:
        """The parsed file; None (with a problem) when it is not valid YAML or is empty."""
        raw, problem = read_yaml(path, self._display(path.name))
        if problem is not None:
            self.problems.append(problem)
            return None
        if raw is None and path.name != POLICIES_FILE:
            self.problems.append(Problem(self._display(path.name), "", "file is empty"))
        return raw

    def _display(self, name: str) -> str:
        return str(self.directory / name)


def _broken_feature_types(raw: list[Any], broken_ids: set[str]) -> dict[str, FeatureType]:
    """Declared types of feature entries that failed validation, so rules reading them are still checked
    against their type instead of being reported as reading an unknown feature."""
    out = {}
    for item in raw:
        broken = isinstance(item, dict) and f"feature:{item.get('name')}" in broken_ids
        if broken and item.get("type") in FeatureType._value2member_map_:
            out[str(item["name"])] = FeatureType(item["type"])
    return out
