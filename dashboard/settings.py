"""Dashboard settings: one typed object built in main() from env and CLI."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from moodstream.settings import ServiceSettings, SettingsError, service_config


class DashboardSettings(ServiceSettings):
    """Env: MOODSTREAM_DASHBOARD_<FIELD> only (the old DASHBOARD_* names are ignored)."""

    model_config = service_config("dashboard")

    host: str = Field("127.0.0.1")
    port: int = Field(8050, ge=1, le=65535)
    # The issue asks for a refresh of at most 2 s; one dcc.Interval drives every callback.
    refresh_s: float = Field(2.0, gt=0.2, le=2.0)
    user: str | None = Field(None)
    password: SecretStr | None = Field(None)
    token: SecretStr | None = Field(None)
    threads: int = Field(4, ge=1, le=64)
    # TLS ends at a reverse proxy in front of us: cookies are Secure, HSTS is sent, and the
    # proxy's X-Forwarded-For / X-Forwarded-Proto are trusted (only then).
    behind_tls: bool = Field(False)
    # Upper bound of rows on the sessions page, newest first.
    session_list_limit: int = Field(500, ge=1, le=10000)
    # Users who may change per-camera alert thresholds, comma-separated: basic-auth user
    # names, "token" (the bearer token's holder), "local" (anyone, when no credentials are
    # set: the dashboard then serves loopback only). Everyone else may only read and acknowledge.
    admins: Annotated[tuple[str, ...], NoDecode] = Field(("local",))
    # Acknowledgements of a camera's alerts expire this long after its latest one (the
    # aggregator keeps alert records 7 days by default).
    alert_ack_ttl_s: int = Field(7 * 86400, ge=0)

    @field_validator("admins", mode="before")
    @classmethod
    def _admins(cls, value: Any):
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",")]
        return tuple(name for name in value if name)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.user and self.password and self.password.get_secret_value():
            return self.user, self.password.get_secret_value()
        return None

    @property
    def bearer_token(self) -> str | None:
        return self.token.get_secret_value() if self.token and self.token.get_secret_value() else None

    def check_access(self) -> None:
        """Refuse a non-loopback bind without credentials; half-set credentials are an error."""
        if bool(self.user) != bool(self.password and self.password.get_secret_value()):
            raise SettingsError("set both MOODSTREAM_DASHBOARD_USER and MOODSTREAM_DASHBOARD_PASSWORD for basic auth")
        if is_loopback(self.host) or self.basic_auth or self.bearer_token:
            return
        raise SettingsError(
            f"refusing to serve the dashboard on {self.host} without credentials: set "
            "MOODSTREAM_DASHBOARD_USER and MOODSTREAM_DASHBOARD_PASSWORD, or MOODSTREAM_DASHBOARD_TOKEN (or bind 127.0.0.1)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything
