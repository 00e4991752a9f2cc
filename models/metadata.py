"""What a registered model carries beside its LightGBM text file: how to encode rows, how to calibrate,
which offers it knows, and how it did on the holdout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import orjson

from models.calibration import Calibration
from models.encoding import FeatureEncoder


@dataclass(frozen=True)
class ModelMetadata:
    """The metadata.json of one model version.

    `offer_ids` are the offers with training rows: any other offer is new to the model and is scored by
    its catalogue prior. `metrics` holds the holdout figures (see `models.metrics.summary`), raw and
    calibrated. `version` is empty until the registry assigns one.

    >>> encoder = FeatureEncoder([], ["a"], ["g"], ["web"], [])
    >>> meta = ModelMetadata("nbo", encoder, Calibration.identity(), ("a",))
    >>> ModelMetadata.from_json(meta.to_json()).offer_ids
    ('a',)
    """

    name: str
    encoder: FeatureEncoder
    calibration: Calibration
    offer_ids: tuple[str, ...]
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    training_rows: int = 0
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    version: str = ""
    created_at: float = 0.0
    model_sha256: str = ""

    def with_version(self, version: str, created_at: float, model_sha256: str) -> ModelMetadata:
        return replace(self, version=version, created_at=created_at, model_sha256=model_sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "model_sha256": self.model_sha256,
            "features": list(self.encoder.columns),
            "encoder": self.encoder.to_dict(),
            "calibration": self.calibration.to_dict(),
            "offer_ids": list(self.offer_ids),
            "metrics": dict(self.metrics),
            "training_rows": self.training_rows,
            "params": dict(self.params),
        }

    def to_json(self) -> bytes:
        # NaN metrics (an AUC with one class) become null: JSON has no NaN.
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        return cls(
            name=data["name"],
            encoder=FeatureEncoder.from_dict(data["encoder"]),
            calibration=Calibration.from_dict(data["calibration"]),
            offer_ids=tuple(data["offer_ids"]),
            metrics=MappingProxyType(dict(data.get("metrics", {}))),
            training_rows=int(data.get("training_rows", 0)),
            params=MappingProxyType(dict(data.get("params", {}))),
            version=data.get("version", ""),
            created_at=float(data.get("created_at", 0.0)),
            model_sha256=data.get("model_sha256", ""),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelMetadata:
        return cls.from_dict(orjson.loads(data))
