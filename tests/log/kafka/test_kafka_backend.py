"""What only the Kafka backend has: a cluster to reach, client settings, replicas that can die."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from mailroom.errors import BrokerUnavailableError
from mailroom.log import TopicPartition, open_log
from mailroom.log.kafka.log import client_settings

from ...conftest import LocalKafka
from ..test_conformance import drain

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broker_down_at_start_is_a_clear_error_within_seconds() -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as exc:
        open_log(f"kafka://{url}", timeout=3)
    assert time.monotonic() - start < 10
    assert url in str(exc.value) and "Is the broker running?" in str(exc.value)


def test_client_settings_pass_through(kafka_bootstrap: str) -> None:
    assert client_settings({"security_protocol": "SSL", "sasl.mechanism": "PLAIN"}) == {
        "security.protocol": "SSL",
        "sasl.mechanism": "PLAIN",
    }
    # a security setting the plaintext broker cannot speak: the connection fails, which proves
    # the setting reached librdkafka rather than being dropped
    with pytest.raises(BrokerUnavailableError):
        open_log(f"kafka://{kafka_bootstrap}", timeout=3, **{"security.protocol": "SSL"})
    # and a harmless one works
    lg = open_log(f"kafka://{kafka_bootstrap}", **{"client.id": "mailroom-test"})
    assert isinstance(lg.list_topics(), list)
    lg.close()


@pytest.mark.slow
def test_three_brokers_survive_one_dying(tmp_path) -> None:
    """`kafka-local start --brokers 3`: replication factor 3, and a killed broker loses nothing."""
    cluster = LocalKafka(tmp_path / "kafka3", brokers=3)
    bootstrap = cluster.start()
    try:
        assert len(bootstrap.split(",")) == 3
        log = open_log(f"kafka://{bootstrap}")
        topic = f"t-rf3-{uuid.uuid4().hex[:8]}"
        spec = log.create_topic(topic, partitions=3, replication_factor=3)
        assert spec.replication_factor == 3
        with log.producer() as p:
            p.send_batch(topic, [b"before-%d" % i for i in range(1000)], [b"%d" % i for i in range(1000)])
            p.flush(30)
        cluster.kill(2)
        with log.producer() as p:  # leaders move to the survivors; acks=all still succeeds
            p.send_batch(topic, [b"after-%d" % i for i in range(1000)], [b"%d" % i for i in range(1000)])
            p.flush(60)
        c = log.consumer()
        c.assign([TopicPartition(topic, i) for i in range(3)])
        values = {r.value for r in drain(c, 2000, timeout=60)}
        c.close()
        log.close()
        assert values == {b"before-%d" % i for i in range(1000)} | {b"after-%d" % i for i in range(1000)}
    finally:
        cluster.stop()
