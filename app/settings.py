"""The one settings object, read from environment variables prefixed `NBO_`.

Defaults give the embedded mode: SQLite history in `var/`, features and summaries in process, the demo
catalogue and the demo model. Production sets `NBO_REDIS_URL` and `NBO_DATABASE_URL`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOGUE = ROOT / "policies" / "demo"
VAR = Path("var")
PLACEHOLDER_SECRETS = frozenset({"secret", "changeme", "change-me", "change_me", "password", "xxx", "todo"})


class Settings(BaseSettings):
    """Every knob of the service. Each field is `NBO_<FIELD>` in the environment (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="NBO_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1)

    catalogue_dir: Path = DEMO_CATALOGUE
    database_url: str = f"sqlite+aiosqlite:///{VAR / 'nbo.db'}"
    # A streaming replica of the history for reads that may lag: the customer history listing, `nbo train`,
    # the batch's summaries, `nbo models outcomes`. The reads that feed contact policies (summary rebuilds)
    # and idempotent retries stay on database_url: a lagging replica could let a cap be exceeded.
    database_read_url: str | None = None
    redis_url: str | None = None  # None: features, summaries and budgets in process
    redis_prefix: str = "nbo"

    features_file: Path | None = VAR / "demo" / "customers.parquet"  # loaded at start in embedded mode
    model_dir: Path = VAR / "models"
    model_name: str = "nbo"
    model_compiled: bool = True  # lleaves-compiled model when available
    # How often each worker reads the champion pointer file to pick up a promotion or a rollback (0: never).
    model_poll_seconds: float = Field(5.0, ge=0)
    # How often each worker refreshes the per-offer response counts behind the cold-start posteriors (0: never).
    posterior_refresh_seconds: float = Field(30.0, ge=0)
    # The history the posteriors count: recent enough to follow a changed offer, and a bounded query.
    posterior_window_days: float = Field(90.0, gt=0)

    history_batch_max: int = Field(500, ge=1)
    # 0: no extra wait; batches still form from the writes that queue while a commit is in flight.
    history_batch_wait_ms: float = Field(0.0, ge=0)
    history_mode: Literal["sync", "write_behind"] = "sync"
    # Embedded history durability: "full" fsyncs every group commit (survives a power loss); "normal"
    # survives a crash of the service but not of the machine, for a much lower latency on slow disks.
    sqlite_synchronous: Literal["full", "normal"] = "full"

    # Redis outages (README "When a store fails"): every call is bounded in time, and after
    # `redis_breaker_failures` failures in a row Redis is not called at all for the cool-down (one probe then).
    redis_connect_timeout_ms: float = Field(250.0, gt=0)
    redis_socket_timeout_ms: float = Field(500.0, gt=0)
    # How long a request waits for a free pooled connection. Not a Redis failure: under a burst the pool
    # is busy while Redis is fine, so this is longer than a call's timeout and never degrades a decision
    # by itself (the in-flight limit bounds how many wait).
    redis_pool_timeout_ms: float = Field(5_000.0, gt=0)
    # Lock + load and append + unlock in one Redis round trip each (coordination/holds.py); false: the
    # four separate calls (lock, load, append, unlock); see docs/performance.md for when to turn it off.
    redis_fused_holds: bool = True
    redis_breaker_failures: int = Field(3, ge=1)
    redis_breaker_cooldown_seconds: float = Field(2.0, gt=0)
    # PostgreSQL outages: the writes it cannot commit are kept in a local spool (history/spool.py) and
    # replayed once it is back; None turns the spool off (a write then fails with 503 while it is down).
    spool_dir: Path | None = VAR / "spool"
    spool_max_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    # SIGTERM: stop accepting, give in-flight requests this long, then flush the history and exit.
    shutdown_grace_seconds: float = Field(20.0, gt=0)

    gil_switch_interval_ms: float = Field(1.0, gt=0, le=100)
    max_offers_limit: int = Field(20, ge=1, le=200)
    max_in_flight: int = Field(256, ge=1)  # decisions in progress per process before answering 503
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    # POST /v1/decisions on its short path (app/decision_endpoint.py); false: every decision through FastAPI.
    fast_decisions: bool = True
    # The overnight batch (`nbo prescore`): where run directories go, and its local worker processes.
    batch_dir: Path = VAR / "batch"
    batch_workers: int = Field(2, ge=1)
    batch_partition_size: int = Field(50_000, ge=1)

    # CPU per fine decision stage in /metrics (loadtests/bench.py --stage-cpu): ~2 µs per stage, so off.
    stage_cpu_timers: bool = False
    # Real-time triggers (docs/triggers.md): the Redis Stream's approximate length (in process: the queue's),
    # and the optional webhook every triggered delivery is POSTed to, signed with the secret.
    trigger_stream_maxlen: int = Field(100_000, ge=100)
    trigger_webhook_url: str | None = None
    trigger_webhook_secret: SecretStr | None = None
    trigger_webhook_attempts: int = Field(5, ge=1, le=20)
    trigger_webhook_backoff_seconds: float = Field(0.5, gt=0, le=60)
    trigger_webhook_timeout_seconds: float = Field(5.0, gt=0, le=120)

    # FastAPI's native OpenTelemetry (traces, metrics, logs to the globally configured providers); off: Prometheus.
    opentelemetry: bool = False
    log_level: str = "INFO"
    access_log: bool = False

    # API keys (app/auth.py): "keys" needs `Authorization: Bearer KEY` on /v1; "none" lets every caller in.
    # Unset: "none" only in the embedded development mode (no Redis, not production), "keys" otherwise.
    auth: Literal["keys", "none"] | None = None
    # How long a verified key is trusted in process: a revocation reaches every replica within this time.
    auth_cache_seconds: float = Field(2.0, ge=0, le=60)

    @model_validator(mode="after")
    def _production_needs_real_stores(self) -> Settings:
        if self.environment == "production" and (self.redis_url is None or self.database_url.startswith("sqlite")):
            raise ValueError("production needs NBO_REDIS_URL and a PostgreSQL NBO_DATABASE_URL")
        return self

    @model_validator(mode="after")
    def _embedded_runs_one_worker(self) -> Settings:
        # Embedded summaries, event features, budgets and customer locks live in the process: a second worker
        # would keep its own, and contact caps and budgets would be broken without any error.
        if self.embedded and self.workers > 1:
            raise ValueError(
                f"{self.workers} workers (NBO_WORKERS) need NBO_REDIS_URL: the embedded mode keeps summaries, "
                "budgets and customer locks in its one process (run one worker, or set NBO_REDIS_URL to share them)"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.environment == "production" and self.auth == "none":
            raise ValueError("production refuses NBO_AUTH=none: callers must send API keys (nbo keys create)")
        return self

    @model_validator(mode="after")
    def _webhook_needs_a_real_secret(self) -> Settings:
        secret = self.trigger_webhook_secret.get_secret_value() if self.trigger_webhook_secret else ""
        if self.trigger_webhook_url is not None and not secret:
            raise ValueError("NBO_TRIGGER_WEBHOOK_URL needs NBO_TRIGGER_WEBHOOK_SECRET: receivers verify the signature")
        weak = len(secret) < 16 or secret.lower() in PLACEHOLDER_SECRETS
        if secret and weak and self.environment != "development":
            raise ValueError("NBO_TRIGGER_WEBHOOK_SECRET is a placeholder or shorter than 16 characters")
        return self

    @property
    def auth_mode(self) -> Literal["keys", "none"]:
        """NBO_AUTH, or its default: "none" in the embedded development mode only."""
        if self.auth is not None:
            return self.auth
        return "none" if self.embedded and self.environment != "production" else "keys"

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def history_read_url(self) -> str:
        """Where reads that may lag go: NBO_DATABASE_READ_URL, or the primary when none is set."""
        return self.database_read_url or self.database_url


def redact_url(url: str) -> str:
    """The URL without its password, for logs: postgresql://app:***@db/nbo."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
