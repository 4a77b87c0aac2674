"""Replay of a transaction whose committing process died half-way."""

from __future__ import annotations

from mailroom.log import TopicPartition, open_log
from mailroom.log.embedded.transactions import TransactionCoordinator

from ..test_conformance import drain


def test_journal_replay_applies_each_part_exactly_once(tmp_path, monkeypatch) -> None:
    log = open_log(str(tmp_path))
    log.create_topic("in")
    log.create_topic("out", partitions=2)
    c = log.consumer("g")
    c.subscribe(["in"])
    tx = log.producer(transactional_id="app-1")
    tx.begin_transaction()
    tx.send_batch("out", [b"p0-%d" % i for i in range(10)], partition=0)
    tx.send_batch("out", [b"p1-%d" % i for i in range(10)], partition=1)

    # die after the first partition's frame landed, before the second one and the offsets
    real_apply = TransactionCoordinator._apply
    calls = []

    def dying_apply(self, fd, entry, landed):
        entry_one = dict(entry, parts=entry["parts"][:1], offsets=[])
        real_apply(self, fd, entry_one, landed)
        calls.append(1)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(TransactionCoordinator, "_apply", dying_apply)
    try:
        tx.commit_transaction({TopicPartition("in", 0): 5}, c)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(TransactionCoordinator, "_apply", real_apply)
    assert calls == [1]

    log.producer(transactional_id="app-1")  # the restarted instance replays the journal
    r = log.consumer()
    r.assign([TopicPartition("out", 0), TopicPartition("out", 1)])
    vals = sorted(x.value for x in drain(r, None, timeout=3))
    assert vals == sorted([b"p0-%d" % i for i in range(10)] + [b"p1-%d" % i for i in range(10)])
    assert c.committed([TopicPartition("in", 0)]) == {TopicPartition("in", 0): 5}
