"""Push queries and slow clients: a client that reads slower than its query produces (a replay
from earliest) gets every row, its query held back; only a client that stops reading is cut off."""

from __future__ import annotations

import asyncio
import json
import time

from mailroom.server import KsqlServer
from mailroom.server.app import _run_query

CREATE_S = "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"


def test_a_slow_reader_gets_every_row(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state", push_buffer=5, push_stall_timeout=5)
    try:
        srv.run_ksql(CREATE_S)
        srv.run_ksql(" ".join(f"INSERT INTO S (K, N) VALUES ('k{i}', {i});" for i in range(60)))

        async def scenario() -> list[str]:
            resp = await _run_query(srv, "SELECT N FROM S EMIT CHANGES LIMIT 60;", {"auto.offset.reset": "earliest"},
                                    "delimited")
            await asyncio.sleep(0.5)  # the query runs ahead of the client: 5 rows queued, then it waits
            assert srv.push_queries and len(srv.push_queries) == 1
            chunks = []
            async for chunk in resp.body_iterator:
                chunks.append(chunk)
                await asyncio.sleep(0.005)  # a client reading slower than the query could produce
            return chunks

        t0 = time.monotonic()
        chunks = asyncio.run(scenario())
        rows = [json.loads(x) for x in "".join(chunks[1:]).split("\n") if x]  # queued rows share a chunk
        assert rows == [[i] for i in range(60)]  # all of them, in order, no error line
        assert srv.metrics.push_slow._value.get() == 0
        assert time.monotonic() - t0 < 5
    finally:
        srv.close()


def test_a_stalled_reader_is_cut_off_after_the_stall_timeout(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state", push_buffer=3, push_stall_timeout=0.5)
    try:
        srv.run_ksql(CREATE_S)
        srv.run_ksql(" ".join(f"INSERT INTO S (K, N) VALUES ('k{i}', {i});" for i in range(20)))

        async def scenario() -> tuple[list[str], float]:
            resp = await _run_query(srv, "SELECT N FROM S EMIT CHANGES;", {"auto.offset.reset": "earliest"}, "delimited")
            t0 = time.monotonic()
            while srv.push_queries and time.monotonic() - t0 < 10:  # reads nothing
                await asyncio.sleep(0.05)
            stalled = time.monotonic() - t0
            return [c async for c in resp.body_iterator], stalled

        chunks, stalled = asyncio.run(scenario())
        assert 0.4 < stalled < 5
        lines = [x for x in "".join(chunks).split("\n") if x]  # queued rows share a chunk
        assert [json.loads(x) for x in lines[1:4]] == [[0], [1], [2]]
        assert "read too slowly" in lines[-1] and len(lines) == 5
        assert srv.push_queries == {} and srv.metrics.push_slow._value.get() == 1
    finally:
        srv.close()
