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
