"""The ``ksqldb`` package from PyPI (``from ksqldb import KSQLdbClient``), unchanged, against a real
`mailroom server`: it posts statements to /ksql with requests (HTTP/1.1), runs every query on
/query-stream over cleartext HTTP/2 with prior knowledge (httpx, delimited lines, one JSON value
per line), inserts through /inserts-stream (HTTP/2) and closes queries with /close-query.

Known faults of the client itself (1.0.1), not of the server:

- ``KSQLdbClient(url, api_key=..., api_secret=...)`` raises ``TypeError: string argument without
  an encoding``: it calls ``bytes(f"{key}:{secret}")`` with no encoding; and even fixed, only
  /ksql and /inserts-stream would send the header (``query`` and ``close_query`` send none). So
  the client cannot be used with ``--auth-file``; the canary below fails when that changes.
- ``query_async``/``query_sync`` never close the ``httpx.AsyncClient`` they create (a
  ResourceWarning at most), and ``query_sync`` refuses any text containing ``emit changes``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from ksqldb import KSQLdbClient

from tests.server.realserver import running_server

EARLIEST = {"ksql.streams.auto.offset.reset": "earliest"}
ROWS = [{"K": "a", "N": 1, "NAME": "x"}, {"K": "b", "N": 2, "NAME": "y"}, {"K": "a", "N": 3, "NAME": "z"}]


async def _collect(client: KSQLdbClient, sql: str, props: dict | None = None, timeout: float | None = 10) -> list:
    return [x async for x in client.query_async(sql, stream_properties=props, timeout=timeout)]


def test_ksqldb_client_end_to_end(tmp_path):
    with running_server(tmp_path) as (base, _):
        client = KSQLdbClient(base)
        # statements: a stream and a table over it
        [created] = client.ksql("CREATE STREAM S (K STRING KEY, N INT, NAME STRING) "
                                "WITH (kafka_topic='s', value_format='JSON', partitions=1);")
        assert created["@type"] == "currentStatus" and created["commandStatus"]["status"] == "SUCCESS"
        [ctas] = client.ksql("CREATE TABLE T AS SELECT K, COUNT(*) AS C, SUM(N) AS TOT FROM S GROUP BY K;")
        assert ctas["commandStatus"]["queryId"] == "CTAS_T_0"
        streams = client.ksql("show streams;")[0]["streams"]
        assert [s["name"] for s in streams] == ["KSQL_PROCESSING_LOG", "S"]  # the server's own, and S
        props = {p["name"]: p["value"] for p in client.get_properties()}
        assert props["ksql.service.id"] == "default_"
        assert props["ksql.logging.processing.topic.name"] == "default_ksql_processing_log"
        fields = client.ksql("describe S extended;")[0]["sourceDescription"]["fields"]
        assert [(f["name"], f.get("type")) for f in fields] == [("K", "KEY"), ("N", None), ("NAME", None)]

        # insert rows (HTTP/2 /inserts-stream): one ack per row
        assert client.inserts_stream("S", ROWS) == [{"status": "ok", "seq": i} for i in range(3)]

        # a push query with LIMIT: the header, then exactly LIMIT rows, then the response ends
        got = asyncio.run(_collect(client, "SELECT * FROM S EMIT CHANGES LIMIT 3;", EARLIEST))
        assert got[0]["columnNames"] == ["K", "N", "NAME"] and got[0]["columnTypes"] == ["STRING", "INTEGER", "STRING"]
        assert got[1:] == [["a", 1, "x"], ["b", 2, "y"], ["a", 3, "z"]]

        # a pull query by key on the table (retried until the CTAS has caught up)
        deadline = time.monotonic() + 20
        while True:
            pulled = client.query_sync("SELECT * FROM T WHERE K = 'a';")
            if pulled[1:] == [["a", 2, 4]] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pulled[0]["columnNames"] == ["K", "C", "TOT"] and pulled[1:] == [["a", 2, 4]]
        # and a pull query scanning the stream
        assert client.query_sync("SELECT NAME FROM S WHERE N > 1;")[1:] == [["y"], ["z"]]

        # close a running push query: its response ends, and it is no longer running
        async def close_one() -> tuple[dict, list]:
            head, rows = None, []
            async for x in client.query_async("SELECT * FROM S EMIT CHANGES;", timeout=None):
                if head is None:
                    head = x
                    assert await asyncio.to_thread(client.close_query, x["queryId"]) is True
                else:
                    rows.append(x)
            return head, rows

        head, rows = asyncio.run(asyncio.wait_for(close_one(), 15))
        assert head["queryId"].startswith("transient_S_") and rows == []
        assert client.close_query(head["queryId"]) is False  # already gone: HTTP 400
        queries = client.ksql("show queries;")[0]["queries"]
        assert [q["id"] for q in queries] == ["CTAS_T_0"]

        # errors: a failing statement raises the client's HTTPError carrying ksqlDB's body, a
        # failing query comes back as its only line
        with pytest.raises(requests.HTTPError) as e:
            client.ksql("CREATE STREAM BAD;")
        assert e.value.response.status_code == 400
        assert e.value.response.json()["@type"] == "statement_error"
        [err] = client.query_sync("SELECT * FROM NOPE;")
        assert err["@type"] == "statement_error" and err["error_code"] == 40001 and "NOPE" in err["message"]


def test_ksqldb_client_cannot_send_credentials():
    """A canary for the client's basic-auth bug (see the module docstring): when it is fixed
    this fails, and a test with --auth-file can be added."""
    with pytest.raises(TypeError, match="encoding"):
        KSQLdbClient("http://127.0.0.1:9", api_key="app", api_secret="s3cret")  # nothing is sent
