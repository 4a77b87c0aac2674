"""Changelog, restore and checkpoints against the real log (both backends)."""

from __future__ import annotations

from mailroom.log import TopicPartition
from mailroom.state import CHANGELOG_CONFIG, CachingStore, Changelog, Checkpoint, InMemoryStore, LmdbEnv, changelog_topic, restore

from ..log.conftest import backend, log, log_url, topic_name  # noqa: F401  (the same two-backend fixtures)


def test_restore_rebuilds_the_store_from_the_changelog(log, topic_name, tmp_path) -> None:  # noqa: F811
    topic = changelog_topic(topic_name, "counts")
    log.create_topic(topic, partitions=2, config=CHANGELOG_CONFIG)
    tp = TopicPartition(topic, 1)
    env = LmdbEnv(tmp_path / "task")
    store = CachingStore(env.store("counts"))
    producer = log.producer()
    changelog = Changelog(producer, tp)
    truth = {}
    for commit in range(5):
        for i in range(1000):
            k, v = b"k%d" % (i % 150), b"%d-%d" % (commit, i)
            store.put(k, v)
            truth[k] = v
        store.delete(b"k7")
        truth.pop(b"k7", None)
        changelog.send(store.flush())
    producer.flush(30)
    env.close()

    fresh = InMemoryStore("counts")
    seen = []
    end = restore(fresh, log, tp, 0, progress=lambda d, t: seen.append((d, t)))
    assert dict(fresh.items()) == truth
    assert end == 5 * 150  # one record per changed key per commit, tombstones included
    assert seen and seen[-1][0] == seen[-1][1]

    # from a checkpoint, only the newer changes are replayed
    cp = Checkpoint(tmp_path / "checkpoint")
    cp.write({tp: end})
    assert cp.read() == {tp: end}
    again = InMemoryStore("counts")
    assert restore(again, log, tp, cp.read()[tp]) == end
    assert dict(again.items()) == {}
