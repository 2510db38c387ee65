"""Every service reads its own settings from MOODSTREAM_<SERVICE>_<FIELD> only, plus the
common names: a bare name (MODEL, GROUP_ID, a lowercase field name) or an old prefix
(AGGREGATOR_*, DASHBOARD_*) left in a shell changes nothing."""

from __future__ import annotations

import importlib

import pytest

from moodstream.settings import CommonSettings, SettingsError, env_names

SERVICES = {
    "ingest": ("ingest.config", "IngestSettings"),
    "detector": ("detector.settings", "DetectorSettings"),
    "aggregator": ("aggregator.settings", "AggregatorSettings"),
    "dashboard": ("dashboard.settings", "DashboardSettings"),
}

# service, field, a value different from the default (as env text), what it parses to
CASES = [
    ("ingest", "camera_id", "door-3", "door-3"),
    ("ingest", "fps", "2.5", 2.5),
    ("ingest", "metrics_port", "9123", 9123),
    ("detector", "model", "/tmp/other.tflite", "/tmp/other.tflite"),
    ("detector", "group_id", "g-env", "g-env"),
    ("detector", "metrics_port", "9123", 9123),
    ("aggregator", "group_id", "g-env", "g-env"),
    ("aggregator", "idle_timeout_s", "7", 7.0),
    ("aggregator", "metrics_port", "9123", 9123),
    ("dashboard", "port", "8123", 8123),
    ("dashboard", "refresh_s", "1.5", 1.5),
    ("dashboard", "metrics_port", "9123", 9123),
]


def settings_class(service: str):
    module, name = SERVICES[service]
    return getattr(importlib.import_module(module), name)


def _value(settings, field):
    value = getattr(settings, field)
    return str(value) if field == "model" else value


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith(("MOODSTREAM_", "DASHBOARD_", "AGGREGATOR_", "INGEST_", "DETECTOR_")):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("service, field, raw, parsed", CASES)
def test_only_the_service_prefixed_name_sets_a_field(monkeypatch, service, field, raw, parsed):
    cls = settings_class(service)
    default = _value(cls.load(), field)
    assert default != parsed
    ignored = [field, field.upper(), f"{service.upper()}_{field.upper()}",
               f"MOODSTREAM_{field.upper()}"]
    for name in ignored:
        monkeypatch.setenv(name, raw)
    assert _value(cls.load(), field) == default, f"one of {ignored} reconfigured {service}"
    monkeypatch.setenv(f"MOODSTREAM_{service.upper()}_{field.upper()}", raw)
    assert _value(cls.load(), field) == parsed


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_env_name_is_the_services_own_or_a_common_one(service):
    cls = settings_class(service)
    common = {name for field in CommonSettings.model_fields.values() for name in env_names(field)}
    for name, field in cls.model_fields.items():
        names = env_names(field)
        assert names, name
        if name in CommonSettings.model_fields:
            assert set(names) <= common
        else:
            assert names == [f"MOODSTREAM_{service.upper()}_{name.upper()}"], names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_common_settings_keep_their_names_in_every_service(monkeypatch, service):
    cls = settings_class(service)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r1:6379/0")
    monkeypatch.setenv("MOODSTREAM_TOPIC_PREFIX", "shop")
    monkeypatch.setenv("TOPIC_PREFIX", "bare")  # only the MOODSTREAM_ name counts
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = cls.load()
    assert (settings.kafka_bootstrap_servers, settings.redis_url, settings.topic_prefix,
            settings.log_level) == ("k1:9092", "redis://r1:6379/0", "shop", "INFO")


def test_a_bad_value_names_the_env_variable(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_DETECTOR_MAX_WAIT_MS", "soon")
    with pytest.raises(SettingsError) as caught:
        settings_class("detector").load()
    assert "max_wait_ms" in str(caught.value) and "MOODSTREAM_DETECTOR_MAX_WAIT_MS" in str(caught.value)
    assert "\n" not in str(caught.value)
