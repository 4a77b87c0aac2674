"""Consumer-group fencing of the embedded log."""

from __future__ import annotations

import time

import pytest

from mailroom.errors import CommitFailedError
from mailroom.log import open_log


def test_stale_member_cannot_commit_partitions_it_lost(tmp_path) -> None:
    log = open_log(str(tmp_path))
    log.create_topic("t", partitions=2)
    a = log.consumer("g")
    a.subscribe(["t"])
    assert len(a.assignment()) == 2
    b = log.consumer("g")
    b.subscribe(["t"])  # b joins; a has not polled since, so it does not know yet
    lost = b.assignment()
    assert len(lost) == 1
    with pytest.raises(CommitFailedError, match="no longer"):
        a.commit({lost[0]: 1})
    b.commit({lost[0]: 0})
    assert b.committed(lost) == {lost[0]: 0}
    a.poll(timeout=0.1)  # a catches up with the rebalance
    assert len(a.assignment()) == 1 and a.assignment()[0] != lost[0]


def test_assignment_keeps_topics_co_partitioned() -> None:
    from mailroom.log import TopicPartition as TP
    from mailroom.log.embedded.groups import assign_partitions

    got = assign_partitions(["b", "a", "c"], {m: ["x", "y"] for m in "abc"}, {"x": 5, "y": 5})
    assert got["a"] == [TP("x", 0), TP("x", 1), TP("y", 0), TP("y", 1)]
    assert got["b"] == [TP("x", 2), TP("x", 3), TP("y", 2), TP("y", 3)]
    assert got["c"] == [TP("x", 4), TP("y", 4)]
