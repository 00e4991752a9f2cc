"""The application layer: one decision path for HTTP, batch, simulator and console.

Commands in (`service.commands`), results (`service.results`) and domain errors (`service.errors`) out;
`DecisionService` (`service.service`) composes the pieces. It depends on the core (`decisioning`) and its
ports only, never on a web framework or a store's client: adapters are passed in (`app/bootstrap.py`).
"""
