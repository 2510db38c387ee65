"""Typed settings of the aggregator: CommonSettings plus lifecycle, retention, alert knobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.rollups import DEFAULT_ROLLUP_TTL_S
from moodstream.settings import ServiceSettings, service_config

DAY_S = 86400


def parse_valence(text: str) -> dict[str, float]:
    """'angry=-1,happy=0.8' -> DEFAULT_VALENCE with those emotions overridden."""
    weights = dict(DEFAULT_VALENCE)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in EMOTIONS:
            raise ValueError(f"expected EMOTION=WEIGHT with EMOTION in {', '.join(EMOTIONS)}, "
                             f"got {item!r}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"weight of {name} is not a number: {value!r}") from None
    return weights


class AggregatorSettings(ServiceSettings):
    """Env: MOODSTREAM_AGGREGATOR_<FIELD> only (a bare GROUP_ID or AGGREGATOR_* is ignored)."""

    model_config = service_config("aggregator")

    group_id: str = Field("aggregator")
    # "group": join the consumer group (the join takes ~session_timeout/2 on Tansu). "all":
    # read every partition with no join, offsets still committed to group_id: for ONE
    # aggregator per group, e.g. `moodstream analyze` (moodstream.clients.kafka_consumer).
    assign: Literal["group", "all"] = "group"
    # A session with no detection for this long is closed (live cameras that vanish).
    idle_timeout_s: float = Field(30.0, gt=0)
    # After session_end, close this long after the last detection even if some of the
    # announced frames never arrive (a frame the detector could not decode, say).
    end_grace_s: float = Field(5.0, gt=0)
    # Retention: every per-session key (buckets, totals, meta, ...) / the summary. 0 = keep.
    bucket_ttl_s: int = Field(7 * DAY_S, ge=0)
    summary_ttl_s: int = Field(90 * DAY_S, ge=0)
    # Hourly rollups per camera (aggregator.rollups): how long they are kept (0 = keep),
    # and how often the current and previous hour are recomputed from the buckets.
    rollup_ttl_s: int = Field(DEFAULT_ROLLUP_TTL_S, ge=0)
    rollup_every_s: float = Field(30.0, gt=0)
    # Sentiment weight per emotion; the CLI/env form is "angry=-1,happy=1,...".
    valence: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_VALENCE))
    # Weight of the newest frame in the camera live EMA (sentiment, emotion mix).
    live_ema_alpha: float = Field(0.3, gt=0, le=1)
    # Privacy: sentiment of fewer distinct people than this (per second, per session, in
    # view on a camera card) is not shown or exported (moodstream/suppression.py). A camera
    # file may ask more for one camera (its `min_people`). 1 = off.
    min_people: int = Field(1, ge=1, le=1000)

    # Alerts: window mean sentiment <= -alert_threshold for alert_min_duration_s opens one;
    # it resolves once the mean is above -alert_resolve_threshold for alert_clear_s, and
    # no new alert opens on that camera for alert_cooldown_s (hysteresis, no flapping).
    alerts_enabled: bool = Field(True)
    alert_window_s: float = Field(10.0, gt=0)
    alert_threshold: float = Field(0.35, gt=0, le=1)
    alert_resolve_threshold: float = Field(0.15, ge=0, le=1)
    alert_min_duration_s: float = Field(5.0, ge=0)
    alert_clear_s: float = Field(5.0, ge=0)
    alert_cooldown_s: float = Field(30.0, ge=0)
    alert_min_faces: int = Field(3, ge=1)
    alert_webhook_url: str | None = Field(None)

    max_poll_records: int = Field(500, ge=1)
    poll_timeout_ms: int = Field(100, ge=1)
    deadletter: bool = Field(True)

    @field_validator("valence", mode="before")
    @classmethod
    def _valence(cls, value: Any):
        if isinstance(value, str):
            value = parse_valence(value)
        if isinstance(value, dict):
            value = {**DEFAULT_VALENCE, **value}
            bad = [k for k, v in value.items() if k not in EMOTIONS or not -1 <= float(v) <= 1]
            if bad:
                raise ValueError(f"valence weights must be in [-1, 1] for known emotions: {bad}")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: str | None):
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @model_validator(mode="after")
    def _hysteresis(self):
        if self.alert_resolve_threshold > self.alert_threshold:
            raise ValueError("alert_resolve_threshold must not exceed alert_threshold "
                             "(the resolve level sits between the open level and neutral)")
        return self
