import pytest

from moodstream.settings import CommonSettings, SettingsError, redact


def test_env_and_overrides(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("MOODSTREAM_TOPIC_PREFIX", "shop")
    s = CommonSettings.load(topic_prefix=None, redis_prefix="x")
    assert (s.kafka_bootstrap_servers, s.redis_url, s.topic_prefix, s.redis_prefix) == \
        ("k:9092", "redis://r:6379/0", "shop", "x")


def test_bad_value_is_one_line_settings_error(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_KAFKA_PARTITIONS", "many")
    with pytest.raises(SettingsError, match="kafka_partitions"):
        CommonSettings.load()


def test_missing_servers_explain_themselves(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SettingsError, match="KAFKA_BOOTSTRAP_SERVERS"):
        CommonSettings.load().require_kafka()


@pytest.mark.parametrize("text, expected", [
    ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
    ("redis://:pw@host:6379/0", "redis://***@host:6379/0"),
    ("opening http://cam/video.mjpg", "opening http://cam/video.mjpg"),
])
def test_redact(text, expected):
    assert redact(text) == expected
