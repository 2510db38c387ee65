"""Typed settings shared by every service, built once at start-up from env and CLI.

Each service subclasses ServiceSettings with `model_config = service_config("name")`: its
own fields are read from MOODSTREAM_<NAME>_<FIELD> only, the common ones from the names
below (KAFKA_* and REDIS_URL, each also MOODSTREAM_-prefixed, and MOODSTREAM_*). Nothing
else in the environment counts: a bare MODEL or GROUP_ID left in a shell, a lowercase
field name or an old prefix (AGGREGATOR_*, DASHBOARD_*) changes nothing. Nothing here is
read at import time: call `Settings.load(**cli_overrides)` in `main()` and pass it on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, AliasGenerator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(ValueError):
    """Wrong configuration; the message is one line a user can act on."""


_BARE = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")
_BARE_PREFIXES = ("KAFKA_SECURITY_", "KAFKA_SASL_", "KAFKA_SSL_")


def _env(name: str, *aliases: str) -> AliasChoices:
    """A common setting: MOODSTREAM_<NAME>; Kafka and Redis names also bare (the names
    every Kafka/Redis deployment already exports)."""
    bare = (name, *aliases) if name in _BARE or name.startswith(_BARE_PREFIXES) else ()
    return AliasChoices(*bare, f"MOODSTREAM_{name}", *(f"MOODSTREAM_{a}" for a in aliases))


def service_config(service: str) -> SettingsConfigDict:
    """The settings config of one service: every field it declares without an explicit
    alias is read from MOODSTREAM_<SERVICE>_<FIELD> and nothing else."""
    prefix = f"MOODSTREAM_{service.upper()}_"
    return SettingsConfigDict(extra="ignore", populate_by_name=True, alias_generator=AliasGenerator(
        validation_alias=lambda field: AliasChoices(prefix + field.upper())))


def env_names(field: FieldInfo) -> list[str]:
    """The environment variable names a settings field reads, in order of precedence."""
    alias = field.validation_alias
    choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
    return [choice for choice in choices if isinstance(choice, str)]


class _AliasEnv(PydanticBaseSettingsSource):
    """The environment, by each field's exact alias names only. pydantic-settings' own
    source would also read the bare field name (any case) because fields may be passed by
    name; that is how a stray MODEL=... used to reconfigure the detector."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for name in env_names(field):
            if name in os.environ:
                return os.environ[name], name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _name, _complex = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return init_settings, _AliasEnv(settings_cls)

    # Unset means "use the embedded servers" (only the CLI launcher starts those).
    kafka_bootstrap_servers: str | None = Field(None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    topic_prefix: str = Field("moodstream", validation_alias=_env("TOPIC_PREFIX"))
    # No braces: a "{" in the prefix would make it every key's Redis Cluster hash tag.
    redis_prefix: str = Field("ms", validation_alias=_env("REDIS_PREFIX"), pattern=r"^[^{}]*$")
    # Tansu only completes a group join after session_timeout/2, so keep this short.
    kafka_session_timeout_ms: int = Field(6000, validation_alias=_env("KAFKA_SESSION_TIMEOUT_MS"))
    kafka_partitions: int = Field(4, validation_alias=_env("KAFKA_PARTITIONS"))
    connect_timeout_s: float = Field(15.0, validation_alias=_env("CONNECT_TIMEOUT_S"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    # Privacy: frames (JPEG pixels) live on the broker only this long; other topics a day.
    frames_retention_ms: int = Field(600_000, ge=1000, validation_alias=_env("FRAMES_RETENTION_MS"))
    topic_retention_ms: int = Field(86_400_000, ge=60_000,
                                    validation_alias=_env("TOPIC_RETENTION_MS"))
    # TLS / SASL for every Kafka client (producer, consumer, admin): see kafka_security().
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL"))
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias=_env("KAFKA_SASL_MECHANISM"))
    kafka_sasl_plain_username: str | None = Field(
        None, validation_alias=_env("KAFKA_SASL_PLAIN_USERNAME", "KAFKA_SASL_USERNAME"))
    kafka_sasl_plain_password: SecretStr | None = Field(
        None, validation_alias=_env("KAFKA_SASL_PLAIN_PASSWORD", "KAFKA_SASL_PASSWORD"))
    kafka_ssl_cafile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    kafka_ssl_certfile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_KEYFILE"))

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any):
        return value.strip().upper() or None if isinstance(value, str) else value

    @classmethod
    def load(cls, **overrides: Any):
        """Env first, then non-None CLI overrides; a bad value becomes a SettingsError."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**clean)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or "settings"
            field = cls.model_fields.get(str(first["loc"][0])) if first["loc"] else None
            where = f" (env {' or '.join(env_names(field))})" if field and env_names(field) else ""
            raise SettingsError(f"invalid setting {name}{where}: {first['msg']}") from None

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

    def kafka_security(self) -> dict[str, Any]:
        """The TLS/SASL keyword arguments every kafka-python client gets; empty for
        PLAINTEXT without files. SettingsError when they cannot work together."""
        protocol, config = self.kafka_security_protocol, {}
        if protocol != "PLAINTEXT":
            config["security_protocol"] = protocol
        if protocol.startswith("SASL_"):
            password = self.kafka_sasl_plain_password
            if not (self.kafka_sasl_mechanism and self.kafka_sasl_plain_username and password):
                raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM, "
                                    "KAFKA_SASL_PLAIN_USERNAME and KAFKA_SASL_PLAIN_PASSWORD")
            config.update(sasl_mechanism=self.kafka_sasl_mechanism,
                          sasl_plain_username=self.kafka_sasl_plain_username,
                          sasl_plain_password=password.get_secret_value())
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(self, f"kafka_ssl_{name}")
            if path:
                if not Path(path).is_file():
                    raise SettingsError(f"KAFKA_SSL_{name.upper()}: no such file: {path}")
                config[f"ssl_{name}"] = path
        if any(key.startswith("ssl_") for key in config) and protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            raise SettingsError(f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL is {protocol}: "
                                "use SSL or SASL_SSL")
        return config


class ServiceSettings(CommonSettings):
    """CommonSettings plus what every service process has: its health/metrics port.
    Subclasses set `model_config = service_config("name")`."""

    # /metrics, /healthz and /readyz on one port (moodstream.health); 0 = off, so demo
    # processes on one host never collide. Kubernetes sets 9100 and 0.0.0.0.
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"


# ---------------------------------------------------------------- redaction

_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>\S*)")
_PARAM = re.compile(r"(?P<lead>[?&;#](?P<name>[^=&;#?\s]+)=)(?P<value>[^&;#\s]*)")
_SECRET_NAME = re.compile(r"pass|pwd|token|key|secret|sig|auth|credential|session", re.I)


def redact(text: str) -> str:
    """Hide the credentials of every URL in `text` (a URL or a whole log line) before it
    reaches a log, a message or Redis: the userinfo (user:password@, also when the password
    holds '@' or '/') becomes ***, and so does the value of any query or fragment parameter
    named like a secret (password, token, key, sig, auth, ...; any case)."""
    return _URL.sub(lambda m: m["scheme"] + _redact_rest(m["rest"]), str(text))


def redact_webhook(url: str) -> str:
    """A webhook URL for a log line: scheme and host only. Slack, Teams or Discord hooks
    carry their secret in the path, so the path and query are never shown."""
    parts = _URL.match(redact(str(url)).strip())
    if not parts:
        return "***"
    authority = re.match(r"[^/?#]*", parts["rest"])[0]  # userinfo is *** by now: no '/'
    beyond = parts["rest"][len(authority):]
    return parts["scheme"] + authority.rpartition("@")[2] + ("/***" if beyond.strip("/") else "")


def _redact_rest(rest: str) -> str:
    at = _userinfo_end(rest)
    if at >= 0:
        rest = "***" + rest[at:]
    return _PARAM.sub(lambda m: m["lead"] + ("***" if _SECRET_NAME.search(m["name"])
                                             else m["value"]), rest)


def _userinfo_end(rest: str) -> int:
    """Index of the '@' that closes a URL's userinfo, or -1. A password typed unencoded may
    hold '@' and '/', so the last '@' counts whose prefix has no '/' at all, or has a ':'
    before its first '/' (user:pa/ss@host). When unsure this hides too much, never too little."""
    at = rest.rfind("@")
    while at >= 0:
        head = rest[:at]
        slash = head.find("/")
        if slash < 0 or ":" in head[:slash]:
            return at
        at = rest.rfind("@", 0, at)
    return -1
