"""The synthetic bank behind `nbo demo`: customers, a simulated contact history and the trained model.

>>> customers = generate_customers(5000, catalogue.features, seed=1, now=now)         # doctest: +SKIP
>>> history = simulate_history(customers, catalogue, days=90, seed=1, now=now)       # doctest: +SKIP
>>> meta = train_demo_model(history, catalogue, ModelRegistry("var/models"))          # doctest: +SKIP
"""

from models.demo.customers import generate_customers
from models.demo.model import DEMO_MODEL, demo_training_set, train_demo_model
from models.demo.simulation import SimulatedHistory, simulate_history
from models.demo.truth import GroundTruth

__all__ = [
    "DEMO_MODEL",
    "GroundTruth",
    "SimulatedHistory",
    "demo_training_set",
    "generate_customers",
    "simulate_history",
    "train_demo_model",
]
