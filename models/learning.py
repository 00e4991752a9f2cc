"""The learning loop's training set: settled contacts of the history, with the features each decision kept.

`TrainingSetBuilder` takes the contacts of `history.training_rows` chunk by chunk (oldest first), settles
them (`models.settling`), encodes the kept ones from their decision's stored feature values (point in time
by construction: the values the decision was made on, never today's) plus the offer, group, channel and
intent columns, and appends them to preallocated arrays. Memory holds the design matrix and one chunk,
never the rows read. `DatasetWriter` writes the same rows to Parquet as they go.

>>> builder = TrainingSetBuilder(catalogue, encoder, as_of=until, expected_rows=n)  # doctest: +SKIP
>>> for chunk in chunks: builder.add(chunk)                                        # doctest: +SKIP
>>> data = builder.finish()                                                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from history.training_rows import TrainingContact
from models.dataset import DEFAULT_WINDOW_SECONDS, TrainingSet
from models.encoding import FeatureEncoder
from models.settling import NO_SNAPSHOT, NOT_DISPLAYED, OTHER_SCHEMA, PENDING, SettlingCounts, settle

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from decisioning.catalogue import Catalogue, FeatureSpec


def encoder_for_catalogue(catalogue: Catalogue) -> FeatureEncoder:
    """An encoder over the catalogue's feature schema, offers, groups, channels and intents (codes stay
    stable across trainings of the same catalogue; an offer of the history no longer in it reads NaN)."""
    offers = sorted(o.id for o in catalogue.offers)
    groups = sorted({o.group for o in catalogue.offers})
    intents = sorted(catalogue.settings.context_weights)
    return FeatureEncoder(catalogue.features, offers, groups, list(catalogue.channels), intents)


class TrainingSetBuilder:
    """Settles, encodes and accumulates training rows (see the module doc)."""

    def __init__(
        self,
        catalogue: Catalogue,
        encoder: FeatureEncoder,
        as_of: float,
        *,
        expected_rows: int = 0,
        writer: DatasetWriter | None = None,
    ) -> None:
        self.catalogue, self.encoder, self.as_of, self.writer = catalogue, encoder, as_of, writer
        self.counts = SettlingCounts()
        self._windows: dict[str, float] = {}
        width = len(encoder.columns)
        self._x = np.empty((max(expected_rows, 1), width))
        self._y = np.empty(len(self._x))
        self._at = np.empty(len(self._x))
        self._offers = np.empty(len(self._x), dtype=object)
        self._channels = np.empty(len(self._x), dtype=object)
        self._n = 0

    def add(self, chunk: Sequence[TrainingContact]) -> None:
        """Settle and encode one chunk of contacts (oldest first)."""
        kept, labels = self._settled(chunk)
        self.counts.read += len(chunk)
        if not kept:
            return
        x = self.encoder.encode_snapshots(
            [c.features for c in kept], [(c.offer_id, c.group, c.channel, c.intent) for c in kept], [c.at for c in kept]
        )
        self._append(x, labels, kept)
        if self.writer is not None:
            self.writer.write(kept, labels)

    def _settled(self, chunk: Sequence[TrainingContact]) -> tuple[list[TrainingContact], list[int]]:
        kept, labels, schema, left_out = [], [], self.catalogue.feature_schema, self.counts.left_out
        for c in chunk:
            if c.not_displayed_at is not None:
                left_out[NOT_DISPLAYED] += 1
                continue
            label = settle(
                c.at, self._window(c.offer_id), accepted_at=c.accepted_at, refused_at=c.refused_at, as_of=self.as_of
            )
            if label is None:
                left_out[PENDING] += 1
            elif c.features is None:
                left_out[NO_SNAPSHOT] += 1
            elif c.feature_schema != schema:
                # Stored in another schema's order: read by position against this one would mislabel
                # columns. Left out (and counted) until older schemas are kept to be mapped.
                left_out[OTHER_SCHEMA] += 1
            else:
                kept.append(c)
                labels.append(label)
        self.counts.kept += len(kept)
        self.counts.positives += sum(labels)
        return kept, labels

    def _window(self, offer_id: str) -> float:
        window = self._windows.get(offer_id)
        if window is None:
            found = self.catalogue.response_window_seconds(offer_id)
            window = self._windows[offer_id] = DEFAULT_WINDOW_SECONDS if found is None else found
        return window

    def _append(self, x: np.ndarray, labels: list[int], kept: list[TrainingContact]) -> None:
        end = self._n + len(x)
        if end > len(self._x):  # more than expected (rows written while counting): grow geometrically
            self._grow(max(end, 2 * len(self._x)))
        self._x[self._n : end] = x
        self._y[self._n : end] = labels
        self._at[self._n : end] = [c.at for c in kept]
        self._offers[self._n : end] = [c.offer_id for c in kept]
        self._channels[self._n : end] = [c.channel for c in kept]
        self._n = end

    def _grow(self, size: int) -> None:
        for name in ("_x", "_y", "_at", "_offers", "_channels"):
            old = getattr(self, name)
            new = np.empty((size, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def finish(self) -> tuple[TrainingSet, np.ndarray]:
        """The training set (views of the arrays, no copy) and each row's channel."""
        n = self._n
        data = TrainingSet(self.encoder, self._x[:n], self._y[:n], self._at[:n], self._offers[:n])
        if self.writer is not None:
            self.writer.close()
        return data, self._channels[:n]


class DatasetWriter:
    """The exact training rows as Parquet, written chunk by chunk: decision_id, contact_id, offer_id,
    channel, contacted_at (epoch seconds), label, offer_group, intent, then every schema feature with the
    value its decision was made on (numbers as float, flags as bool, categories as text). The model's
    matrix is `FeatureEncoder.encode_snapshots` of these values (recorded in the model's metadata)."""

    def __init__(self, path: Path, specs: Sequence[FeatureSpec]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.specs = pa, tuple(specs)
        fixed = [
            ("decision_id", pa.string()),
            ("contact_id", pa.string()),
            ("offer_id", pa.string()),
            ("channel", pa.string()),
            ("contacted_at", pa.float64()),
            ("label", pa.int8()),
            ("offer_group", pa.string()),
            ("intent", pa.string()),
        ]
        self.schema = pa.schema([*fixed, *((s.name, _arrow_type(pa, s)) for s in self.specs)])
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(path, self.schema)

    def write(self, kept: Sequence[TrainingContact], labels: Sequence[int]) -> None:
        columns: dict[str, list[Any]] = {
            "decision_id": [c.decision_id for c in kept],
            "contact_id": [c.contact_id for c in kept],
            "offer_id": [c.offer_id for c in kept],
            "channel": [c.channel for c in kept],
            "contacted_at": [c.at for c in kept],
            "label": list(labels),
            "offer_group": [c.group for c in kept],
            "intent": [c.intent for c in kept],
        }
        for j, spec in enumerate(self.specs):
            columns[spec.name] = [_typed(spec, c.features[j]) for c in kept]  # type: ignore[index]
        assert self._writer is not None
        self._writer.write_table(self.pa.table(columns, schema=self.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _arrow_type(pa: Any, spec: FeatureSpec) -> Any:
    kind = spec.type.value
    return pa.bool_() if kind == "bool" else pa.string() if kind == "category" else pa.float64()


def _typed(spec: FeatureSpec, value: Any) -> Any:
    # Validated values are typed already; a stray one (another producer) must not break the file.
    if value is None:
        return None
    kind = spec.type.value
    if kind == "bool":
        return bool(value)
    if kind == "category":
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
