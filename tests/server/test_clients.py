"""An unchanged external client from PyPI against a real `mailroom server`: ksql-python-ng
(``import ksql``), which speaks HTTP/1.1 for /info, /ksql, /query and /close-query, and cleartext
HTTP/2 with prior knowledge for /query-stream and /inserts-stream.

Its HTTP/1.1 calls other than close_query pass ``cert=`` to httpx, which httpx 0.28 removed: with
the httpx installed here they fail in the client before sending anything (see
test_client_http1_calls_need_httpx_before_0_28), so statements go through plain httpx and the
client drives the HTTP/2 endpoints and close_query."""

from __future__ import annotations

import json
import threading
import time
import warnings

import httpx
import pytest

from mailroom.server.auth import set_user
from tests.server.realserver import running_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # its ksql.utils imports telnetlib
    from ksql import KSQLAPI

EARLIEST = {"auto.offset.reset": "earliest"}


def ksql(base: str, text: str, auth: tuple[str, str] | None = None) -> list:
    r = httpx.post(base + "/ksql", json={"ksql": text}, auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def _lines(chunks) -> list[str]:
    """The client yields raw chunks (one per HTTP/2 DATA frame or HTTP/1.1 read): split in lines."""
    return [x for x in "".join(chunks).split("\n") if x.strip()]


def test_ksql_python_ng_end_to_end(tmp_path):
    with running_server(tmp_path) as (base, _):
        client = KSQLAPI(base, check_version=False)
        ksql(base, "CREATE STREAM PAGEVIEWS (VIEWTIME BIGINT, USERID VARCHAR, PAGEID VARCHAR) "
                   "WITH (kafka_topic='pageviews', value_format='JSON', partitions=1);"
                   "CREATE TABLE VIEWS_BY_USER AS SELECT USERID, COUNT(*) AS N FROM PAGEVIEWS GROUP BY USERID;")
        # inserts (HTTP/2, /inserts-stream): one ack per row
        rows = [{"VIEWTIME": 1, "USERID": "u1", "PAGEID": "p1"}, {"VIEWTIME": 2, "USERID": "u2", "PAGEID": "p2"},
                {"VIEWTIME": 3, "USERID": "u1", "PAGEID": "p3"}]
        acks = client.inserts_stream("PAGEVIEWS", rows)
        assert acks == [{"status": "ok", "seq": 0}, {"status": "ok", "seq": 1}, {"status": "ok", "seq": 2}]
        # a push query with LIMIT over HTTP/2 (/query-stream), parsed by the client
        got = list(client.query("SELECT PAGEID, USERID FROM PAGEVIEWS EMIT CHANGES LIMIT 3;", use_http2=True,
                                stream_properties=EARLIEST))
        lines = _lines(got)
        assert json.loads(lines[0])["columnNames"] == ["PAGEID", "USERID"]
        assert [json.loads(x) for x in lines[1:]] == [["p1", "u1"], ["p2", "u2"], ["p3", "u1"]]
        # a pull query on the table (retried until the CTAS has caught up)
        deadline = time.monotonic() + 15
        while True:
            lines = _lines(client.query("SELECT * FROM VIEWS_BY_USER WHERE USERID = 'u1';", use_http2=True))
            if lines[1:] == ['["u1",2]'] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert lines[1:] == ['["u1",2]']
        # close a running push query: the client's response ends
        head: dict = {}
        done = threading.Event()

        def consume():
            for chunk in client.query("SELECT * FROM PAGEVIEWS EMIT CHANGES;", use_http2=True):
                if not head:
                    head.update(json.loads(chunk.split("\n")[0]))
            done.set()

        threading.Thread(target=consume, daemon=True).start()
        deadline = time.monotonic() + 10
        while not head and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.close_query(head["queryId"]) is True
        assert done.wait(10)
        assert client.close_query(head["queryId"]) is False  # no longer running
        # a failing query comes back as the client's error with ksqlDB's body
        with pytest.raises(ValueError, match="40001"):
            list(client.query("SELECT * FROM NOPE EMIT CHANGES;", use_http2=True))


def test_client_http1_calls_need_httpx_before_0_28(tmp_path):
    """A canary: when ksql-python-ng (or httpx) changes, this fails and the test above can use
    the client's ksql() and get_ksql_version() too."""
    client = KSQLAPI("http://127.0.0.1:9", check_version=False)  # nothing listens: nothing is sent
    with pytest.raises(TypeError, match="cert"):
        client.ksql("SHOW STREAMS;")


def test_ksql_python_ng_with_basic_auth(tmp_path):
    users = tmp_path / "users"
    set_user(users, "app", "read-write", "s3cret")
    with running_server(tmp_path, "--auth-file", str(users)) as (base, _):
        ksql(base, "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                   "INSERT INTO S (K, N) VALUES ('a', 1);", auth=("app", "s3cret"))
        client = KSQLAPI(base, api_key="app", secret="s3cret", check_version=False)
        lines = _lines(client.query("SELECT * FROM S EMIT CHANGES LIMIT 1;", use_http2=True, stream_properties=EARLIEST))
        assert json.loads(lines[1]) == ["a", 1]
        bad = KSQLAPI(base, api_key="app", secret="wrong", check_version=False)
        with pytest.raises(ValueError, match="401.*40100"):
            list(bad.query("SELECT * FROM S EMIT CHANGES LIMIT 1;", use_http2=True))
        # this client sends no credentials on /inserts-stream and /close-query: refused, nothing runs
        with pytest.raises(ValueError, match="401"):
            client.close_query("transient_S_1")
        assert client.inserts_stream("S", [{"K": "b", "N": 2}])[0]["error_code"] == 40100
