"""A count after a re-key is combined before its repartition topic: the topic carries one row
per distinct key and batch (with how many records it stands for), and the counts stay exact."""

from __future__ import annotations

import io
import random
from collections import Counter

import orjson
import polars as pl

from mailroom.engine import MSGPACK, App, JsonColumnsSerde, TestDriver, Topology
from mailroom.engine.aggregators import COMBINED_COUNT, CountAggregator
from mailroom.engine.codec import unpack
from mailroom.log import TopicPartition, open_log


def _topology() -> Topology:
    top = Topology()
    (top.stream("in", value_serde=JsonColumnsSerde({"domain": pl.String}))
        .group_by("domain").count().to_stream().to("out", value_serde=MSGPACK))
    return top


def _repartition_rows(log, topic: str) -> pl.DataFrame:
    c = log.consumer()
    c.assign([TopicPartition(topic, p) for p in range(log.describe_topic(topic).partitions)])
    frames = []
    while batches := c.poll(10_000, timeout=0.2):
        for rb in batches:
            frames += [pl.read_ipc_stream(io.BytesIO(unpack(v)["v"])) for v in rb.values]
    c.close()
    return pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.Series("__record", [i for i, f in enumerate(frames) for _ in range(len(f))]))


def test_the_repartition_topic_carries_distinct_keys_and_the_counts_are_exact(tmp_path) -> None:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("in", 2)
    log.create_topic("out", 2)
    rng = random.Random(7)
    domains = [f"d{int(40 * rng.random() ** 2)}.com" for _ in range(20_000)]
    with log.producer() as p:
        p.send_batch("in", [orjson.dumps({"domain": d, "pad": "x" * 50}) for d in domains],
                     [f"m{i}".encode() for i in range(len(domains))])
    app = App(_topology(), "combine", log, state_dir=tmp_path / "state")
    app.run(idle_timeout=1.0)
    c = log.consumer()
    c.assign([TopicPartition("out", 0), TopicPartition("out", 1)])
    final: dict[str, int] = {}
    while batches := c.poll(10_000, timeout=0.2):
        for rb in batches:
            for k, v in zip(rb.keys, rb.values):
                final[k.decode()] = unpack(v)
    c.close()
    assert final == Counter(domains)
    [rtopic] = [t for t in log.list_topics() if t.endswith("-repartition")]
    rows = _repartition_rows(log, rtopic)
    assert rows[COMBINED_COUNT].sum() == len(domains)
    assert len(rows) < len(domains) // 10  # ~40 keys a batch, not 20,000 records
    log.close()


def test_without_caching_every_record_goes_through_and_every_update_comes_out() -> None:
    d = TestDriver(_topology(), caching=False)
    d.pipe_batch("in", [(f"m{i}", {"domain": dom}, i) for i, dom in enumerate("aabab")])
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=MSGPACK)] == [
        ("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]


def test_a_combined_row_counts_for_its_records_on_every_path() -> None:
    agg = CountAggregator()
    assert agg.add(3, "k", {COMBINED_COUNT: 5}) == 8  # record by record (a consumer without caching)
    assert agg.add(3, "k", {"domain": "x"}) == 4


def _run_and_read(tmp_path, domains: list[str], **app_kw) -> tuple[dict[str, int], pl.DataFrame]:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("in", 2)
    log.create_topic("out", 2)
    with log.producer() as p:
        p.send_batch("in", [orjson.dumps({"domain": d}) for d in domains], [f"m{i}".encode() for i in range(len(domains))])
    App(_topology(), "gather", log, state_dir=tmp_path / "state", **app_kw).run(idle_timeout=1.0)
    c = log.consumer()
    c.assign([TopicPartition("out", 0), TopicPartition("out", 1)])
    final: dict[str, int] = {}
    while batches := c.poll(10_000, timeout=0.2):
        for rb in batches:
            final.update((k.decode(), unpack(v)) for k, v in zip(rb.keys, rb.values))
    c.close()
    [rtopic] = [t for t in log.list_topics() if t.endswith("-repartition")]
    rows = _repartition_rows(log, rtopic)
    log.close()
    return final, rows


def test_the_combiner_gathers_batches_until_the_commit(tmp_path) -> None:
    # small polls, one commit (when the input is drained): each task sends each key once
    domains = [f"d{i % 40}.com" for i in range(20_000)]
    final, rows = _run_and_read(tmp_path, domains, max_poll_records=500, commit_interval_ms=600_000)
    assert final == Counter(domains)
    assert len(rows) <= 2 * 40  # (2 input partitions: 2 tasks), not 40 keys for each of 40+ polls


def test_many_distinct_keys_go_out_before_the_commit(tmp_path, monkeypatch) -> None:
    from mailroom.engine.operators.repartition import CountCombineNode

    monkeypatch.setattr(CountCombineNode, "max_rows", 256)
    domains = [f"d{i % 3000}.com" for i in range(12_000)]
    final, rows = _run_and_read(tmp_path, domains, max_poll_records=200, commit_interval_ms=600_000)
    assert final == Counter(domains)
    assert rows[COMBINED_COUNT].sum() == len(domains)
    # reduced rows that still held more than half the limit went out at once, in many small
    # records (held to the commit they would make 2 tasks x 2 partitions = 4)
    assert rows["__record"].n_unique() > 20
    assert rows.group_by("__record").len()["len"].max() <= 256
