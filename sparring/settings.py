"""Settings from the environment (and nothing else: API keys are never settings).

Every knob has a default that works on a laptop with no Redis and no key. Names are
``SPARRING_*`` except ``REDIS_URL``, which is what hosting platforms conventionally set.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HARD_MAX_MESSAGES = 100


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPARRING_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("data"), description="Folder for the DuckDB file and the embedded queue.")
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "SPARRING_REDIS_URL"),
        description="Queue mode when set (Huey on Redis); embedded mode (Huey on SQLite) when empty.",
    )

    namespace: str = Field(
        default="sparring",
        pattern=r"^[a-z][a-z0-9_-]{0,40}$",
        description="Prefix of every Redis key and the Huey queue name (several deployments can share a Redis).",
    )

    # Battle limits.
    default_max_messages: Annotated[int, Field(ge=2, le=HARD_MAX_MESSAGES)] = 25
    default_time_limit_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 900.0

    # Model calls.
    model_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    model_connect_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=10.0,
        description="Of a model's timeout, what an HTTP call may spend getting a connection "
        "(opening one, or a free one from the pool); the reply still gets the whole timeout.",
    )
    model_max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    retry_base_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    retry_max_wait_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    provider_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64
    provider_rate_limit: str = Field(
        default="6000/minute",
        description="Per real provider, shared by all workers; `limits` notation. The in-process sim has none "
        "unless one is set in provider_overrides.",
    )
    provider_overrides: dict[str, dict[str, str | int]] = Field(
        default_factory=dict,
        description='JSON, e.g. {"openai": {"concurrency": 8, "rate_limit": "500/minute"}}.',
    )
    breaker_threshold: Annotated[int, Field(ge=1, le=1000)] = 10
    breaker_cooldown_s: Annotated[float, Field(gt=0, le=3600)] = 30.0

    # Workers and recovery.
    worker_threads: Annotated[int, Field(ge=1, le=512)] = 4
    embedded_workers: Annotated[int, Field(ge=1, le=512)] = 8
    lease_ttl_s: Annotated[float, Field(ge=2, le=3600)] = 30.0
    reaper_period_s: Annotated[int, Field(ge=1, le=3600)] = 15
    heartbeat_period_s: Annotated[float, Field(gt=0, le=10)] = 5.0
    heartbeat_ttl_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    result_ttl_s: Annotated[int, Field(ge=60)] = 24 * 3600

    # Scale tests.
    max_runs_per_cell: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_battles_per_run: Annotated[int, Field(ge=1, le=1_000_000)] = 2000

    # Store.
    commit_linger_s: Annotated[float, Field(ge=0, le=1)] = 0.002
    duckdb_threads: Annotated[int | None, Field(ge=1, le=64)] = Field(
        default=None, description="DuckDB threads per process (workers use 1: their statements are tiny)."
    )
    record_sink: Literal["duckdb", "stream"] = Field(
        default="duckdb",
        description="`duckdb`: write the file; `stream`: send records to the ingester (remote workers).",
    )
    live_mirror: bool | None = Field(
        default=None,
        description="Keep battle state in Redis for remote workers (always on with the stream sink).",
    )

    # Access: sign-in itself is Streamlit's ([auth] in .streamlit/secrets.toml).
    allow_anonymous: bool = Field(
        default=False,
        description="Serve without sign-in on a non-loopback address, on purpose (every page says so).",
    )
    roles_file: Path = Field(
        default=Path("roles.toml"),
        description="Who gets which role, and spend limits (TOML; roles.example.toml shows the format).",
    )
    person_daily_usd: Annotated[float | None, Field(ge=0)] = Field(
        default=None, description="What one person may spend per UTC day, in dollars (the roles file may override)."
    )
    deployment_daily_usd: Annotated[float | None, Field(ge=0)] = Field(
        default=None, description="What everyone together may spend per UTC day, in dollars."
    )

    @field_validator("redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "sparring.duckdb"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.sqlite3"

    @property
    def mirrors(self) -> bool:
        """Whether this process keeps the live mirror (see sparring.livestate)."""
        if not self.redis_url:
            return False
        return self.record_sink == "stream" or bool(self.live_mirror)

    @property
    def mode(self) -> str:
        return "queue" if self.redis_url else "embedded"

    def rate_limit_for(self, provider: str) -> str | None:
        """The provider's rate limit (`limits` notation); None for the in-process sim unless one is set."""
        override = self.provider_overrides.get(provider, {})
        if "rate_limit" in override:
            return str(override["rate_limit"])
        return None if provider == "sim" else self.provider_rate_limit


@functools.cache
def get_settings() -> Settings:
    """Settings of this process, read once. Tests call ``get_settings.cache_clear()``."""
    return Settings()
