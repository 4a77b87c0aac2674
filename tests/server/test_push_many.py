"""Many push subscribers on one server: 120 concurrent /query-stream clients of a live push query
all get every row while a persistent query on the same stream keeps up; subscribers of the same
live query share one running query, and one that stops reading is cut off without holding the
others back."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from mailroom.log import open_log
from mailroom.server import KsqlServer
from mailroom.server.app import _run_query
from mailroom.server.fanout import fanout_of
from tests.server.realserver import running_server

SUBSCRIBERS = 120
ROWS = 200
DELIMITED = "application/vnd.ksqlapi.delimited.v1"
PUSH = "SELECT N FROM S EMIT CHANGES;"  # auto.offset.reset latest (the default): a live tail


def ksql(base: str, text: str) -> list:
    r = httpx.post(base + "/ksql", json={"ksql": text}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def sink_count(base: str) -> int:
    r = httpx.post(base + "/query-stream", json={"sql": "SELECT * FROM BIG;"}, timeout=30)
    assert r.status_code == 200, r.text
    return len([x for x in r.text.split("\n") if x.strip()]) - 1


async def subscribe(client: httpx.AsyncClient, base: str, seen_marker: list[int]) -> tuple[float, list[int]]:
    """Reads rows until ROWS data rows (N >= 0) came; markers (N = -1) only say it is live.
    Returns (when the last row came, the data rows)."""
    rows: list[int] = []
    marked = False
    async with client.stream("POST", base + "/query-stream", json={"sql": PUSH}, headers={"accept": DELIMITED}) as r:
        assert r.status_code == 200
        lines = r.aiter_lines()
        assert "queryId" in json.loads(await lines.__anext__())
        async for line in lines:
            [n] = json.loads(line)
            if n < 0:
                if not marked:
                    marked = True
                    seen_marker[0] += 1
                continue
            rows.append(n)
            if len(rows) == ROWS:
                break  # leaves: the server drops this subscriber
    return time.monotonic(), rows


def test_120_live_subscribers_get_every_row_and_the_persistent_query_keeps_up(tmp_path):
    with running_server(tmp_path) as (base, _):
        ksql(base, "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                   "CREATE STREAM BIG AS SELECT K, N FROM S WHERE N >= 0;")
        log = open_log(f"embedded:{tmp_path / 'log'}")  # a producer in another process, as an application's

        def produce(values: list[int]) -> None:
            with log.producer() as p:
                for n in values:
                    p.send("s", json.dumps({"N": n}).encode(), f"k{n}".encode())
                p.flush(10)

        async def scenario() -> tuple[list[tuple[float, list[int]]], float, float]:
            seen_marker = [0]
            limits = httpx.Limits(max_connections=SUBSCRIBERS + 10, max_keepalive_connections=SUBSCRIBERS + 10)
            async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60)) as client:
                tasks = [asyncio.create_task(subscribe(client, base, seen_marker)) for _ in range(SUBSCRIBERS)]
                deadline = time.monotonic() + 60
                while seen_marker[0] < SUBSCRIBERS:  # until every subscriber is live (its query positioned)
                    assert time.monotonic() < deadline, f"only {seen_marker[0]} subscribers live"
                    await asyncio.to_thread(produce, [-1])
                    await asyncio.sleep(0.2)
                shows = await asyncio.to_thread(ksql, base, "SHOW QUERIES;")
                push = [q for q in shows[0]["queries"] if q["queryType"] == "PUSH"]
                assert len(push) == SUBSCRIBERS and len({q["id"] for q in push}) == SUBSCRIBERS
                t0 = time.monotonic()
                await asyncio.to_thread(produce, list(range(ROWS)))
                while (n := await asyncio.to_thread(sink_count, base)) < ROWS:
                    assert time.monotonic() - t0 < 10, f"the persistent query has {n} of {ROWS} rows after 10 s"
                    await asyncio.sleep(0.05)
                csas = time.monotonic() - t0
                results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
                return results, csas, max(t for t, _ in results) - t0

        try:
            results, csas, delivered = asyncio.run(scenario())
        finally:
            log.close()
        print(f"{SUBSCRIBERS} live subscribers: the persistent query had all {ROWS} rows after {csas:.2f}s, "
              f"every subscriber after {delivered:.2f}s")
        assert len(results) == SUBSCRIBERS
        for _, rows in results:
            assert rows == list(range(ROWS))
        assert sink_count(base) == ROWS
        # every subscriber left: the shared query stops; only the persistent query is listed
        deadline = time.monotonic() + 10
        while [q["id"] for q in ksql(base, "SHOW QUERIES;")[0]["queries"]] != ["CSAS_BIG_0"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_live_subscribers_share_one_query_and_a_stalled_one_does_not_hold_the_others(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state", push_buffer=8, push_stall_timeout=30)
    try:
        srv.run_ksql("CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);")

        async def read_rows(resp, n: int) -> list[str]:
            got: list[str] = []
            async for chunk in resp.body_iterator:
                got.append(chunk)
                if sum(c.count("\n") for c in got) >= n + 1:  # the header and n rows
                    break
            await resp.body_iterator.aclose()  # the client leaves
            return got

        async def scenario() -> tuple[list[str], list[str]]:
            stalled = await _run_query(srv, PUSH, {}, "delimited")
            reader = await _run_query(srv, PUSH, {}, "delimited")
            assert len(srv.push_queries) == 2 and fanout_of(srv).running() == 1  # one query, two subscribers
            reading = asyncio.create_task(read_rows(reader, 40))  # a client that keeps up
            await asyncio.sleep(1.0)  # the shared query positions itself at the end
            for b in range(8):  # 40 rows, 5 at a time: the stalled client's buffer (8) fills, not the reader's
                await asyncio.to_thread(srv.run_ksql, " ".join(f"INSERT INTO S (K, N) VALUES ('k', {b * 5 + i});"
                                                               for i in range(5)))
                await asyncio.sleep(0.2)
            got = await asyncio.wait_for(reading, 10)  # in time: nobody waited out the 30 s stall timeout
            return got, [c async for c in stalled.body_iterator]

        t0 = time.monotonic()
        got, cut = asyncio.run(scenario())
        assert time.monotonic() - t0 < 20
        assert [json.loads(x) for x in "".join(got).split("\n")[1:] if x] == [[i] for i in range(40)]
        lines = [x for x in "".join(cut).split("\n") if x]
        assert [json.loads(x) for x in lines[1:9]] == [[i] for i in range(8)]  # its buffer, then cut off at once
        assert "read too slowly" in lines[-1] and len(lines) == 10
        assert srv.metrics.push_slow._value.get() == 1
        deadline = time.monotonic() + 5
        while (srv.push_queries or fanout_of(srv).running()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.push_queries == {} and fanout_of(srv).running() == 0
    finally:
        srv.close()
