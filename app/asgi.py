"""The ASGI entry point for uvicorn (`app.asgi:app`), imported once in every worker process.

Per-process set-up lives here, not in the `nbo serve` supervisor: with several workers, uvicorn spawns
fresh interpreters that only import this module.
"""

import sys

from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings

settings = Settings()
configure_logging(settings.log_level, settings.access_log)
# The history writer runs on a thread: a short GIL switch interval lets it commit within ~1 ms of being woken
# instead of waiting up to 5 ms (the default) for the busy event loop to yield the GIL.
sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
app = create_app(settings)
