"""`mailroom server` over TLS (--tls-cert/--tls-key, a certificate made here) and over HTTP/2:
cleartext with prior knowledge (h2c, as ksqlDB's Java client and ksql-python-ng speak it) on the
same port as HTTP/1.1, and h2 by ALPN over TLS. Push queries stream rows as they come, and a
client that goes away (an HTTP/2 stream reset) stops its query."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.server.realserver import running_server

CREATE_S = "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
EARLIEST = {"auto.offset.reset": "earliest"}


def make_cert(tmp_path):
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailroom test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _queries(client, base) -> list[str]:
    return [q["id"] for q in client.post(base + "/ksql", json={"ksql": "SHOW QUERIES;"}).json()[0]["queries"]]


def test_h2c_prior_knowledge_push_query(tmp_path):
    with running_server(tmp_path) as (base, _):
        with httpx.Client(http1=False, http2=True, timeout=10) as h2:
            r = h2.post(base + "/ksql", json={"ksql": CREATE_S + "INSERT INTO S (K, N) VALUES ('a', 1);"})
            assert r.status_code == 200 and r.http_version == "HTTP/2"
            body = {"sql": "SELECT K, N FROM S EMIT CHANGES LIMIT 2;", "properties": EARLIEST}
            with h2.stream("POST", base + "/query-stream", json=body) as r:
                assert r.http_version == "HTTP/2" and r.status_code == 200
                lines = r.iter_lines()
                head = json.loads(next(lines))
                assert head["columnNames"] == ["K", "N"]
                assert json.loads(next(lines)) == ["a", 1]
                t0 = time.monotonic()
                # the second row arrives while the response is open: rows stream as they come
                assert h2.post(base + "/ksql", json={"ksql": "INSERT INTO S (K, N) VALUES ('b', 2);"}).status_code == 200
                assert json.loads(next(lines)) == ["b", 2]
                latency = time.monotonic() - t0
                assert [x for x in lines if x] == []  # LIMIT 2 ends the response
            print(f"\nh2c: row inserted -> row received in {latency * 1000:.0f} ms")
            assert head["queryId"] not in _queries(h2, base)
        # HTTP/1.1 still answers on the same port
        assert httpx.get(base + "/info").http_version == "HTTP/1.1"


def _h2_open_push(port: int, sql: str):
    """A raw HTTP/2 client (the h2 package): opens /query-stream with prior knowledge and reads
    the header line; returns (socket, connection, stream id, query id)."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = json.dumps({"sql": sql}).encode()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":path", "/query-stream"), (":scheme", "http"),
                            (":authority", f"127.0.0.1:{port}"), ("content-type", "application/json"),
                            ("content-length", str(len(body)))])
    conn.send_data(sid, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    buf = b""
    while b"\n" not in buf:
        data = sock.recv(65535)
        assert data, "the server closed the connection"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                buf += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        sock.sendall(conn.data_to_send())
    return sock, conn, sid, json.loads(buf.split(b"\n")[0])["queryId"]


def _gone(base: str, qid: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if qid not in _queries(httpx, base):
            return True
        time.sleep(0.1)
    return False


def test_h2c_stream_reset_or_disconnect_stops_the_push_query(tmp_path):
    import h2.errors

    with running_server(tmp_path) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        httpx.post(base + "/ksql", json={"ksql": CREATE_S})
        # RST_STREAM (CANCEL) on a connection that stays open
        sock, conn, sid, qid = _h2_open_push(port, "SELECT * FROM S EMIT CHANGES;")
        assert qid in _queries(httpx, base)
        conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
        sock.sendall(conn.data_to_send())
        assert _gone(base, qid)
        sock.close()
        # the TCP connection closed under an open stream
        sock, conn, sid, qid = _h2_open_push(port, "SELECT * FROM S EMIT CHANGES;")
        sock.close()
        assert _gone(base, qid)


def test_tls_with_http1_and_h2(tmp_path):
    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(cafile=str(cert))
    with running_server(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), verify=ctx, scheme="https") as (base, _):
        assert base.startswith("https://")
        with httpx.Client(verify=ctx, timeout=10) as h1:
            r = h1.post(base + "/ksql", json={"ksql": CREATE_S + "INSERT INTO S (K, N) VALUES ('a', 1);"})
            assert r.status_code == 200 and r.http_version == "HTTP/1.1"
        with httpx.Client(verify=ctx, http2=True, timeout=10) as h2:  # h2 chosen by ALPN
            body = {"sql": "SELECT * FROM S EMIT CHANGES LIMIT 1;", "properties": EARLIEST}
            r = h2.post(base + "/query-stream", json=body)
            assert r.http_version == "HTTP/2" and r.text.strip().split("\n")[1] == '["a",1]'
        # the port speaks TLS only, and a client that does not trust the certificate is refused
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https", "http") + "/info", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(base + "/info", timeout=5)


def test_tls_options_are_checked(tmp_path):
    import subprocess
    import sys

    from tests.server.realserver import ROOT

    cert, _ = make_cert(tmp_path)
    base = [sys.executable, "-m", "mailroom.cli", "server", "--log", f"embedded:{tmp_path / 'log'}"]
    r = subprocess.run(base + ["--tls-cert", str(cert)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "go together" in r.stderr
    r = subprocess.run(base + ["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem")],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr
