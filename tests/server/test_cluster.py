"""Two `mailroom server` processes with one service id on one log (embedded, or the test session's
Kafka broker) form a cluster: a
statement sent to one runs on both, the engine splits the query's partitions between them, a pull
query by key answers the same on either (forwarded to the owner, which the response names), and
when one server is killed its partitions move and the survivor answers every key."""

from __future__ import annotations

import json
import signal
import time
import uuid
from contextlib import ExitStack

import httpx
import pytest

from .realserver import running_server

KEYS = [f"k{i:02d}" for i in range(40)]  # on Kafka the first 12 (a pull query costs more there)
SOURCE_HOST = "x-mailroom-source-host"


def ksql(base: str, text: str) -> list:
    r = httpx.post(base + "/ksql", json={"ksql": text}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def pull(base: str, key: str) -> tuple[int, list | dict, str | None]:
    """A pull query by key on /query-stream: (HTTP status, rows or the error, answering host)."""
    r = httpx.post(base + "/query-stream", json={"sql": f"SELECT * FROM T WHERE K = '{key}';"},
                   headers={"Accept": "application/json"}, timeout=30)
    body = r.json()
    return r.status_code, (body[1:] if r.status_code == 200 else body), r.headers.get(SOURCE_HOST)


def expected(rounds: int, keys: list[str] = KEYS) -> dict[str, list]:
    """K, SUM(N), COUNT(*) of each key after ``rounds`` rounds of inserts (N = key number + round)."""
    return {k: [k, sum(i + r for r in range(rounds)), rounds] for i, k in enumerate(keys)}


def insert_round(base: str, r: int, keys: list[str] = KEYS) -> None:
    ksql(base, " ".join(f"INSERT INTO S (K, N) VALUES ('{k}', {i + r});" for i, k in enumerate(keys)))


def answers(base: str, keys: list[str]) -> tuple[dict[str, list], dict[str, str], list]:
    """Every key's row and answering host from ``base``; the errors met on the way."""
    rows, hosts, errors = {}, {}, []
    for k in keys:
        status, got, host = pull(base, k)
        if status == 200:
            rows[k] = got[0] if got else None
            hosts[k] = host
        else:
            errors.append((status, got))
    return rows, hosts, errors


def wait_answers(base: str, want: dict[str, list], timeout: float = 30) -> tuple[dict, dict, list]:
    deadline = time.monotonic() + timeout
    seen_errors: list = []
    while True:
        rows, hosts, errors = answers(base, list(want))
        seen_errors += errors
        if rows == want or time.monotonic() > deadline:
            return rows, hosts, seen_errors
        time.sleep(0.3)


def cluster_hosts(base: str) -> dict:
    r = httpx.get(base + "/clusterStatus", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["clusterStatus"]


def wait_split(base: str, hosts: list[str], timeout: float = 30) -> dict:
    """/clusterStatus once every host is alive and each owns some of the table's partitions."""
    deadline = time.monotonic() + timeout
    while True:
        st = cluster_hosts(base)
        parts = {h: [p for q in st[h]["activeStandbyPerQuery"].values() for p in q["tablePartitions"]]
                 for h in hosts if h in st and st[h]["hostAlive"]}
        if len(parts) == len(hosts) and all(parts.values()) and sorted(p for ps in parts.values() for p in ps) == [0, 1, 2, 3]:
            return st
        assert time.monotonic() < deadline, f"the partitions were not split between {hosts}: {st}"
        time.sleep(0.3)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.slow)])
def shared_log(request, tmp_path) -> tuple[str, str, str, list[str]]:
    """(log URL, service id, topic suffix, keys): the embedded log in tmp_path, or the session's
    Kafka broker with a service id and topics of this test's own."""
    if request.param == "embedded":
        return f"embedded:{tmp_path / 'log'}", "default_", "", KEYS
    tag = uuid.uuid4().hex[:8]
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}", f"cluster_{tag}_", f"_{tag}", KEYS[:12]


def test_two_servers_answer_alike_and_survive_one_dying(tmp_path, shared_log) -> None:
    log, service_id, tag, keys = shared_log
    # exactly-once: the rows after the kill must equal the inserted ones (at-least-once may count
    # again what the killed server had processed but not yet committed)
    args = ("--service-id", service_id, "--guarantee", "exactly_once")
    with ExitStack() as stack:
        a, _ = stack.enter_context(running_server(tmp_path, *args, log=log, state_dir=tmp_path / "a"))
        b, proc_b = stack.enter_context(running_server(tmp_path, *args, log=log, state_dir=tmp_path / "b"))
        host_a, host_b = a.split("://")[1], b.split("://")[1]

        # statements sent to A run on B too (the command topic), with the same query id
        ksql(a, f"CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s{tag}', value_format='JSON', partitions=4);"
                f"CREATE TABLE T WITH (kafka_topic='t{tag}') AS SELECT K, SUM(N) AS TOTAL, COUNT(*) AS CNT FROM S GROUP BY K;")
        deadline = time.monotonic() + 20
        while True:
            qb = [q["id"] for q in ksql(b, "SHOW QUERIES;")[0]["queries"]]
            if qb or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert qb == [q["id"] for q in ksql(a, "SHOW QUERIES;")[0]["queries"]] == ["CTAS_T_0"]

        # the engine splits the query's partitions; each server knows who owns which
        st = wait_split(a, [host_a, host_b])
        assert set(st) == {host_a, host_b}
        for r in range(2):
            insert_round(a if r == 0 else b, r, keys)
        want = expected(2, keys)

        rows_a, hosts_a, _ = wait_answers(a, want)
        rows_b, hosts_b, _ = wait_answers(b, want)
        assert rows_a == want and rows_b == want
        # each key is answered by the same server (its owner) whichever server was asked
        assert hosts_a == hosts_b
        assert set(hosts_a.values()) == {host_a, host_b}  # some answers were forwarded, both ways

        # ksqlDB's debug flag names the answering host in each row of /query
        k = next(k for k, h in hosts_a.items() if h == host_b)
        r = httpx.post(a + "/query", json={"ksql": f"SELECT * FROM T WHERE K = '{k}';",
                                           "streamsProperties": {"request.ksql.debug": True}}, timeout=30)
        assert r.status_code == 200, r.text
        assert json.loads(r.text)[1] == {"row": {"columns": want[k]}, "sourceHost": host_b}
        # a scan answers the whole table from either server
        for base in (a, b):
            r = httpx.post(base + "/query-stream", json={"sql": "SELECT * FROM T;"}, headers={"Accept": "application/json"})
            assert r.status_code == 200, r.text
            assert sorted(map(tuple, r.json()[1:])) == sorted(map(tuple, want.values()))

        # freeze B: it stops heartbeating (and answering) but, on the embedded log, still holds its
        # partitions. Once A drops it, a key of B's says that its partition is being restored
        # rather than answer what may be stale
        insert_round(a, 2, keys)
        want = expected(3, keys)
        proc_b.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        deadline = frozen + 20
        while True:
            status, err, _ = pull(a, k)  # (k: a key of B's)
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status == 503, (status, err)
        assert err["@type"] == "generic_error" and err["error_code"] == 50300, err
        assert "being restored" in err["message"] and "Retry" in err["message"], err
        print(f"a frozen owner: 'being restored' {time.monotonic() - frozen:.1f} s after it stopped")

        # kill B: once its partitions move to A, A answers every key, with the rows inserted since
        proc_b.kill()
        proc_b.wait(10)
        killed = time.monotonic()
        rows, hosts, errors = wait_answers(a, want, timeout=45)
        moved_after = time.monotonic() - killed
        assert rows == want, f"after {moved_after:.1f} s: {rows} (errors {errors[:3]})"
        assert set(hosts.values()) == {host_a}
        for status, err in errors:  # meanwhile: the same error, never stale rows
            assert status == 503 and err["error_code"] == 50300 and "being restored" in err["message"], err
        wait_split(a, [host_a])
        print(f"failover: every key answered by the survivor {moved_after:.1f} s after the kill; "
              f"{len(errors)} 'being restored' answers meanwhile")


def test_statements_follow_between_running_servers(tmp_path) -> None:
    """In-process: CREATE, TERMINATE and DROP sent to one running server run on the other while
    it runs (not only at its start), with the same query ids; both show in /clusterStatus."""
    from mailroom.server import KsqlServer

    log = f"embedded:{tmp_path / 'log'}"
    a = KsqlServer(log, tmp_path / "a", advertised_url="http://127.0.0.1:1")
    b = KsqlServer(log, tmp_path / "b", advertised_url="http://127.0.0.1:2")
    try:
        def wait(cond, what: str, timeout: float = 15) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        a.run_ksql("CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=2);"
                   "CREATE TABLE T AS SELECT K, SUM(N) AS TOTAL FROM S GROUP BY K;")
        wait(lambda: "CTAS_T_0" in b.runtime.apps, "the CTAS did not start on B")
        # B's own statement comes after A's in B's numbering too (it caught up first)
        b.run_ksql("CREATE TABLE U AS SELECT K, COUNT(*) AS C FROM S GROUP BY K;")
        wait(lambda: "CTAS_U_1" in a.runtime.apps, "B's CTAS did not start on A")
        assert sorted(a.executor.queries) == sorted(b.executor.queries) == ["CTAS_T_0", "CTAS_U_1"]
        # each one's heartbeats tell the other what it runs
        wait(lambda: "CTAS_U_1" in a.cluster_status()["clusterStatus"].get("127.0.0.1:2", {}).get("activeStandbyPerQuery", {}),
             "B's heartbeat did not reach A")
        st = a.cluster_status()["clusterStatus"]
        assert set(st) == {"127.0.0.1:1", "127.0.0.1:2"} and st["127.0.0.1:2"]["hostAlive"]

        a.run_ksql("TERMINATE CTAS_U_1; DROP TABLE U;")
        wait(lambda: "CTAS_U_1" not in b.runtime.apps and b.executor.meta.find("U") is None, "TERMINATE/DROP did not follow")
        assert list(b.executor.queries) == ["CTAS_T_0"]
    finally:
        b.close()
        a.close()
    # a clean close leaves at once (a tombstone): a new server alone on the log answers by itself
    c = KsqlServer(log, tmp_path / "c")
    try:
        time.sleep(0.5)
        assert not c.cluster.peers_seen and sorted(c.executor.queries) == ["CTAS_T_0"]
    finally:
        c.close()
