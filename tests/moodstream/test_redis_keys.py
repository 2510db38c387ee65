"""Every key of the data model has the Redis Cluster hash tag its scripts need: a session's
keys {sess:S}, a camera's {cam:C}, and cross-session keys none. Walks RedisKeys, so a key
added later is checked too."""

from __future__ import annotations

import inspect

import pytest
from redis.crc import key_slot

from moodstream.redis_keys import RedisKeys

KEYS = RedisKeys("ms")
ARGUMENTS = {"session_id": "visit-7", "camera_id": "door-2", "run_id": "r1", "hour": 3600,
             "period": "hourly"}


def named_keys() -> list[tuple[str, str, str | None]]:
    """(name, key, the id it belongs to: "session", "camera" or None) for every key."""
    out = []
    for name, member in inspect.getmembers(RedisKeys):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append((name, getattr(KEYS, name), None))
        elif inspect.isfunction(member) and name != "session_keys":
            params = list(inspect.signature(member).parameters)[1:]
            owner = {"session_id": "session", "camera_id": "camera"}.get(params[0])
            out.append((name, member(KEYS, *(ARGUMENTS[p] for p in params)), owner))
    return out


@pytest.mark.parametrize("name, key, owner", named_keys(), ids=lambda v: str(v))
def test_each_key_has_the_hash_tag_of_what_it_belongs_to(name, key, owner):
    assert key.startswith("ms:")
    if owner == "session":
        assert "{sess:visit-7}" in key and key_slot(key.encode()) == key_slot(b"sess:visit-7")
    elif owner == "camera":
        assert "{cam:door-2}" in key and key_slot(key.encode()) == key_slot(b"cam:door-2")
    else:  # written alone, by plain commands: spread over the nodes by their full name
        assert "{" not in key and "}" not in key


def test_the_walk_finds_the_keys_scripts_use():
    found = {name for name, _, _ in named_keys()}
    assert {"meta", "totals", "buckets", "seen", "camera_live", "sessions", "cameras",
            "active_sessions", "open_alerts"} <= found
    assert {KEYS.summary("visit-7"), *KEYS.session_keys("visit-7")} <= \
        {key for _, key, owner in named_keys() if owner == "session"}
