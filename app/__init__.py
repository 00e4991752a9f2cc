"""The HTTP service around the decision core: FastAPI app, wiring, CLI."""
