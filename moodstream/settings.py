"""Typed settings shared by every service, built once at start-up from env and CLI.

Each service subclasses CommonSettings with its own fields. Nothing here is read at
import time: call `Settings.load(**cli_overrides)` in `main()` and pass the object on.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """Wrong configuration; the message is one line a user can act on."""


def _env(name: str, *aliases: str):
    return AliasChoices(name, f"MOODSTREAM_{name}", *aliases)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Unset means "use the embedded servers" (only the CLI launcher starts those).
    kafka_bootstrap_servers: str | None = Field(None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    topic_prefix: str = Field("moodstream", validation_alias=_env("TOPIC_PREFIX"))
    redis_prefix: str = Field("ms", validation_alias=_env("REDIS_PREFIX"))
    # Tansu only completes a group join after session_timeout/2, so keep this short.
    kafka_session_timeout_ms: int = Field(6000, validation_alias=_env("KAFKA_SESSION_TIMEOUT_MS"))
    kafka_partitions: int = Field(4, validation_alias=_env("KAFKA_PARTITIONS"))
    connect_timeout_s: float = Field(15.0, validation_alias=_env("CONNECT_TIMEOUT_S"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))

    @classmethod
    def load(cls, **overrides: Any):
        """Env first, then non-None CLI overrides; a bad value becomes a SettingsError."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**clean)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"]).upper() or "SETTINGS"
            raise SettingsError(f"invalid setting {name.lower()} (env {name} or MOODSTREAM_{name}): "
                                f"{first['msg']}") from None

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is not set (or run through `moodstream`, "
                                "which starts an embedded broker)")
        return self.kafka_bootstrap_servers

    def require_redis(self) -> str:
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set (or run through `moodstream`, "
                                "which starts an embedded Redis)")
        return self.redis_url


_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<auth>[^/@\s]+)@")


def redact(text: str) -> str:
    """Hide user:password in any URL before it reaches a log line."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", str(text))
