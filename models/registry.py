"""A file registry of model versions, with champion and challenger pointers.

Layout: `<root>/<model_name>/<version>/{model.txt, metadata.json}` and `<root>/<model_name>/pointers.json`.
A version is `<UTC timestamp>-<short content hash>`: it sorts by time and names its content. Files are
written under a temporary name and renamed, so a reader never sees half a model or half a pointer file.

`ChampionChallengerScorer` splits traffic by a stable hash of the customer id: a customer always meets
the same model while the split holds, and each decision logs the version that actually scored it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from models.lightgbm_scorer import METADATA_FILE, MODEL_FILE, LightGBMScorer
from models.metadata import ModelMetadata
from models.prior import PriorScorer

if TYPE_CHECKING:
    from decisioning.catalogue import Offer
    from decisioning.ports import Scorer
    from decisioning.types import Context, CustomerFeatures

POINTERS_FILE = "pointers.json"


class ModelNotFound(LookupError):
    """No such model, version or champion in the registry."""


@dataclass(frozen=True, slots=True)
class Pointers:
    """The registry's serving state. `previous` holds the earlier champions, oldest first: `rollback`
    returns to the last of them (a pointers file written before it existed reads as no history)."""

    champion: str | None = None
    challenger: str | None = None
    challenger_share: float = 0.0
    previous: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: bytes) -> Pointers:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the pointers file does not hold an object")
        return cls(
            data.get("champion"),
            data.get("challenger"),
            float(data.get("challenger_share", 0.0)),
            tuple(data.get("previous", ())),
        )


class ModelRegistry:
    """Model versions on a file system (a local directory, or a shared volume for several replicas).

    >>> registry = ModelRegistry(Path("var/models"))               # doctest: +SKIP
    >>> meta = registry.register(booster.model_to_string(), meta)   # doctest: +SKIP
    >>> registry.set_challenger("nbo", meta.version, share=0.1)     # doctest: +SKIP
    >>> scorer = registry.scorer("nbo")                             # doctest: +SKIP
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def register(
        self, model_text: str, metadata: ModelMetadata, *, now: float | None = None, first_is_champion: bool = True
    ) -> ModelMetadata:
        """Store a model version and return its metadata with the assigned version.

        The first version of a model becomes its champion (unless `first_is_champion` is False: `nbo
        train` registers candidates only); later ones wait for `promote`.
        """
        now = time.time() if now is None else now
        sha = hashlib.sha256(model_text.encode()).hexdigest()
        content = hashlib.sha256(sha.encode() + metadata.to_json()).hexdigest()[:8]
        version = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{content}"
        stored = metadata.with_version(version, now, sha)
        self._write_version(metadata.name, stored, model_text)
        if first_is_champion and self.pointers(metadata.name).champion is None:
            self.promote(metadata.name, version)
        return stored

    def _write_version(self, name: str, metadata: ModelMetadata, model_text: str) -> None:
        final = self.directory(name, metadata.version)
        if final.exists():
            return  # the same content registered in the same second: already there
        staging = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / MODEL_FILE).write_text(model_text)
        (staging / METADATA_FILE).write_bytes(metadata.to_json())
        staging.rename(final)

    def directory(self, name: str, version: str) -> Path:
        return self.root / name / version

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """A version's metadata (the champion's when `version` is None)."""
        path = self.directory(name, self._resolve(name, version)) / METADATA_FILE
        return ModelMetadata.from_json(path.read_bytes())

    def load(self, name: str, version: str | None = None, **options: Any) -> LightGBMScorer:
        """A scorer for a version (the champion when `version` is None); `options` go to the scorer."""
        return LightGBMScorer.load(self.directory(name, self._resolve(name, version)), **options)

    def _resolve(self, name: str, version: str | None) -> str:
        version = version or self.pointers(name).champion
        if version is None or not (self.directory(name, version) / METADATA_FILE).exists():
            raise ModelNotFound(f"model {name!r} has no version {version or '(champion)'}")
        return version

    def list_versions(self, name: str) -> list[ModelMetadata]:
        """Every registered version of a model, oldest first."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        paths = sorted(p for p in folder.glob(f"*/{METADATA_FILE}") if not p.parent.name.startswith("."))
        return [ModelMetadata.from_json(p.read_bytes()) for p in paths]

    def names(self) -> list[str]:
        """The models that have at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.list_versions(p.name))

    def pointers_path(self, name: str) -> Path:
        """The champion pointer file: what running replicas poll to pick up a promotion or a rollback."""
        return self.root / name / POINTERS_FILE

    def pointers(self, name: str) -> Pointers:
        path = self.pointers_path(name)
        return Pointers.from_json(path.read_bytes()) if path.exists() else Pointers()

    def promote(self, name: str, version: str) -> Pointers:
        """Make a version the champion (a challenger that is promoted stops being the challenger); the
        champion it replaces goes on the history that `rollback` returns to."""
        self._resolve(name, version)
        current = self.pointers(name)
        if current.champion == version:
            return current
        challenger = current.challenger if current.challenger != version else None
        share = current.challenger_share if challenger else 0.0
        previous = (*current.previous, current.champion) if current.champion else current.previous
        return self._write_pointers(name, Pointers(version, challenger, share, previous))

    def rollback(self, name: str) -> Pointers:
        """Make the previous champion the champion again (the challenger is left as it is)."""
        current = self.pointers(name)
        if not current.previous:
            raise ModelNotFound(f"model {name!r} has no previous champion to roll back to")
        back = current.previous[-1]
        self._resolve(name, back)
        challenger = current.challenger if current.challenger != back else None
        rolled = Pointers(back, challenger, current.challenger_share if challenger else 0.0, current.previous[:-1])
        return self._write_pointers(name, rolled)

    def set_challenger(self, name: str, version: str, share: float) -> Pointers:
        """Send a share of customers (0 < share < 1, by a stable hash of their id) to a version."""
        if not 0.0 < share < 1.0:
            raise ValueError("a challenger's share must be between 0 and 1")
        self._resolve(name, version)
        current = self.pointers(name)
        return self._write_pointers(name, Pointers(current.champion, version, share, current.previous))

    def clear_challenger(self, name: str) -> Pointers:
        current = self.pointers(name)
        return self._write_pointers(name, Pointers(current.champion, previous=current.previous))

    def _write_pointers(self, name: str, pointers: Pointers) -> Pointers:
        path = self.root / name / POINTERS_FILE
        tmp = path.with_name(f".{POINTERS_FILE}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(asdict(pointers)))  # a tuple is written as a JSON list
        tmp.replace(path)
        return pointers

    def scorer(self, name: str, **options: Any) -> Scorer:
        """The serving scorer: champion (and challenger when set); the prior scorer when none exists."""
        pointers = self.pointers(name)
        if pointers.champion is None:
            return PriorScorer()
        champion = self.load(name, pointers.champion, **options)
        if pointers.challenger is None:
            return champion
        challenger = self.load(name, pointers.challenger, **options)
        return ChampionChallengerScorer(champion, challenger, pointers.challenger_share)


class ChampionChallengerScorer:
    """Routes each customer to the champion or the challenger by a stable hash of the customer id.

    Call `for_customer` and log *its* `version`: this object's own `version` names both models.

    >>> split = ChampionChallengerScorer(PriorScorer(), PriorScorer({"a": (1, 2)}), share=0.5)
    >>> split.for_customer("c-000001").version in ("prior", "prior-beta")
    True
    """

    def __init__(self, champion: Scorer, challenger: Scorer, share: float, salt: str = "challenger") -> None:
        self.champion, self.challenger, self.share, self.salt = champion, challenger, share, salt
        self.version = f"{champion.version}|{challenger.version}@{share:g}"

    def is_challenger(self, customer_id: str) -> bool:
        digest = hashlib.blake2b(f"{self.salt}:{customer_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64 < self.share

    def for_customer(self, customer_id: str) -> Scorer:
        return self.challenger if self.is_challenger(customer_id) else self.champion

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        return self.for_customer(customer.customer_id).score(customer, context, offers)
