"""Train the demo bank's propensity model from its simulated history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from models.dataset import TrainingSet, build_training_set, encoder_for, label_contacts
from models.demo.simulation import SimulatedHistory
from models.encoding import SpecLike
from models.metadata import ModelMetadata
from models.registry import ModelRegistry
from models.training import TrainingConfig, train_and_register

if TYPE_CHECKING:
    from decisioning.catalogue import Catalogue

DEMO_MODEL = "nbo"


def demo_training_set(
    history: SimulatedHistory, catalogue: Catalogue, specs: Sequence[SpecLike] | None = None
) -> TrainingSet:
    """Labelled contacts of the simulated history, joined with point-in-time features.

    Features come from `specs` (default: the catalogue's feature schema); channels and intents from the
    catalogue, so that the codes cover what the service will see.
    """
    labelled = label_contacts(
        history.contacts,
        history.responses,
        history.now,
        catalogue.response_window_seconds,
        intents=history.intents,
    )
    intents = list(catalogue.settings.context_weights)
    encoder = encoder_for(specs or catalogue.features, labelled, catalogue.channels, intents)
    return build_training_set(labelled, history.snapshots, encoder)


def train_demo_model(
    history: SimulatedHistory,
    catalogue: Catalogue,
    registry: ModelRegistry,
    *,
    name: str = DEMO_MODEL,
    config: TrainingConfig | None = None,
    specs: Sequence[SpecLike] | None = None,
) -> ModelMetadata:
    """Train the global model on the simulated history and register it (champion if it is the first).

    >>> meta = train_demo_model(history, catalogue, ModelRegistry("var/models"))  # doctest: +SKIP
    >>> meta.metrics["holdout"]["auc"]                                           # doctest: +SKIP
    0.79
    """
    return train_and_register(registry, demo_training_set(history, catalogue, specs), name, config)
