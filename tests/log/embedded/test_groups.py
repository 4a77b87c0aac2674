"""Consumer-group fencing of the embedded log."""

from __future__ import annotations

import time

import pytest

from mailroom.errors import CommitFailedError
from mailroom.log import open_log


def test_a_partition_changes_hands_at_the_previous_owners_last_commit(tmp_path) -> None:
    """Cooperative hand-over: the new owner waits until the old one has let the partition go;
    the old one may still commit it meanwhile (its revoke callback does), so nothing it did is
    processed again."""
    log = open_log(str(tmp_path))
    log.create_topic("t", partitions=2)
    with log.producer() as p:
        p.send_batch("t", [b"v%d" % i for i in range(10)], partition=0)
        p.send_batch("t", [b"w%d" % i for i in range(10)], partition=1)
    a = log.consumer("g")
    revoked = []

    def on_revoke(tps):
        revoked.extend(tps)
        a.commit({tp: 7 for tp in tps})  # progress so far, committed on the way out

    a.subscribe(["t"], on_revoke=on_revoke)
    assert len(a.assignment()) == 2
    b = log.consumer("g")
    b.subscribe(["t"])  # b joins; a has not polled since, so it still holds both partitions
    assert b.assignment() == [] and not b.poll(timeout=0.05)
    a.poll(timeout=0.1)  # a catches up: gives one partition up, committing it first
    assert len(revoked) == 1 and a.assignment() == [tp for tp in a.assignment() if tp != revoked[0]]
    got = [bt for bt in b.poll(timeout=0.5)]
    assert b.assignment() == revoked
    assert got and got[0].offsets[0] == 7  # where a left it, not from the start


def test_a_stale_member_cannot_commit_a_partition_taken_over_from_it(tmp_path, monkeypatch) -> None:
    import mailroom.log.embedded.consumer as consumer_mod

    monkeypatch.setattr(consumer_mod, "HANDOFF_TIMEOUT", 0.0)  # b stops waiting for a at once
    log = open_log(str(tmp_path))
    log.create_topic("t", partitions=2)
    a = log.consumer("g")
    a.subscribe(["t"])
    b = log.consumer("g")
    b.subscribe(["t"])  # a never polls: b takes its partition over after the (zero) timeout
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
