"""benchmarks.scale_bench's pure parts: camera ids that cover every partition, the
assignment read from a service's log, and the 2-vs-1 ratios."""

from __future__ import annotations

from kafka.partitioner.default import DefaultPartitioner

from benchmarks.scale_bench import assigned_partitions, camera_ids, ratios
from moodstream.launcher import Service


class Metadata:
    """What kafka-python's partitioner asks of the cluster metadata: one topic."""

    def __init__(self, partitions: int):
        self.all = set(range(partitions))

    def topics(self):
        return {"frames"}

    def partitions_for_topic(self, topic):
        return self.all

    def available_partitions_for_topic(self, topic):
        return self.all


def test_camera_ids_land_on_distinct_partitions_as_the_producer_places_them():
    for count, partitions in ((8, 8), (4, 8), (12, 8)):
        ids = camera_ids(count, partitions)
        assert len(ids) == len(set(ids)) == count
        placed = [DefaultPartitioner().partition("frames", cam, cam.encode(), b"", b"",
                                                 Metadata(partitions)) for cam in ids]
        assert len(set(placed)) == min(count, partitions), (count, placed)


def test_assigned_partitions_is_the_last_assignment_logged(tmp_path):
    service = Service("detector:x", [], crashes=None, log_path=tmp_path / "x.log")
    assert assigned_partitions(service) is None
    service.log_path.write_text("... partitions assigned: 0,1,2\n... partitions assigned: 3,5\n")
    assert assigned_partitions(service) == {"3", "5"}
    service.log_path.write_text("... partitions assigned: none\n")
    assert assigned_partitions(service) == set()


def test_ratios_are_two_over_one_per_stage():
    rows = [{"stage": "detector", "members": 1, "per_s": 20.0},
            {"stage": "detector", "members": 2, "per_s": 35.0},
            {"stage": "aggregator", "members": 1, "per_s": 1000.0}]
    assert ratios(rows) == {"detector": 1.75, "aggregator": None}
