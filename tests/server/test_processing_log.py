"""The processing log as a stream on a real server: a malformed record on a stream's topic is
skipped by the query reading it, reported to ``default_ksql_processing_log`` with where it came
from, and shows in ``KSQL_PROCESSING_LOG``; the query goes on."""

from __future__ import annotations

import base64
import json
import time

import httpx

from mailroom.log import open_log
from tests.server.realserver import running_server

EARLIEST = {"auto.offset.reset": "earliest"}


def ksql(base: str, text: str) -> list:
    r = httpx.post(base + "/ksql", json={"ksql": text}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def query_lines(base: str, sql: str, props: dict | None = None) -> list:
    r = httpx.post(base + "/query-stream", json={"sql": sql, "properties": props or {}}, timeout=30)
    assert r.status_code == 200, r.text
    return [json.loads(x) for x in r.text.split("\n") if x.strip()]


def wait_rows(base: str, sql: str, n: int, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        lines = query_lines(base, sql)
        if len(lines) - 1 >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_a_malformed_record_shows_in_ksql_processing_log_and_the_query_goes_on(tmp_path):
    with running_server(tmp_path) as (base, _):
        [desc] = ksql(base, "DESCRIBE KSQL_PROCESSING_LOG;")
        assert desc["sourceDescription"]["topic"] == "default_ksql_processing_log"
        ksql(base, "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                   "CREATE STREAM GOOD AS SELECT K, N FROM S;")
        log = open_log(f"embedded:{tmp_path / 'log'}")  # another process on the same log, as a producer would be
        try:
            with log.producer() as p:
                for value in (b'{"N": 1}', b'{"N": 2', b'{"N": 3}'):  # offset 1: not JSON
                    p.send("s", value, b"k")
                p.flush(10)
        finally:
            log.close()

        # the persistent query skipped the bad record, kept the others, and keeps running
        assert [r[1] for r in wait_rows(base, "SELECT * FROM GOOD;", 2)[1:]] == [1, 3]
        ksql(base, "INSERT INTO S (K, N) VALUES ('k', 4);")
        assert [r[1] for r in wait_rows(base, "SELECT * FROM GOOD;", 3)[1:]] == [1, 3, 4]
        assert [q["id"] for q in ksql(base, "SHOW QUERIES;")[0]["queries"]] == ["CSAS_GOOD_0"]

        # the entry, through a push query on the stream (from the beginning)
        lines = query_lines(base, "SELECT LOGGER, TOPIC, `PARTITION`, `OFFSET`, REASON, VALUE FROM KSQL_PROCESSING_LOG "
                                  "EMIT CHANGES LIMIT 1;", EARLIEST)
        assert lines[0]["columnNames"] == ["LOGGER", "TOPIC", "PARTITION", "OFFSET", "REASON", "VALUE"]
        [[logger, topic, partition, offset, reason, value]] = lines[1:]
        assert "CSAS_GOOD_0" in logger
        assert (topic, partition, offset) == ("s", 0, 1)
        assert "JSON" in reason.upper()
        assert base64.b64decode(value) == b'{"N": 2'

        # and through PRINT of its topic
        r = httpx.post(base + "/query", json={"ksql": "PRINT 'default_ksql_processing_log' FROM BEGINNING LIMIT 1;"},
                       timeout=30)
        assert r.status_code == 200, r.text
        printed = [x for x in r.text.split("\n") if x.strip()]
        assert printed[0].startswith("Key format:") and printed[1].startswith("Value format: JSON")
        assert '"offset":1' in printed[2] and "partition: 0" in printed[2] and '"topic":"s"' in printed[2]
        # on /query-stream (what `mailroom sql` reads): a header and one row per record
        lines = query_lines(base, "PRINT 'default_ksql_processing_log' FROM BEGINNING LIMIT 1;")
        assert lines[0]["columnNames"] == ["ROWTIME", "PARTITION", "OFFSET", "KEY", "VALUE"]
        [[_, partition, offset, key, value]] = lines[1:]
        assert (partition, offset, key) == (0, 0, "s-0") and json.loads(value)["offset"] == 1
        r = httpx.post(base + "/query-stream", json={"sql": "PRINT 'nope';"}, timeout=30)
        assert r.status_code == 400 and r.json()["@type"] == "statement_error" and "nope" in r.json()["message"]
