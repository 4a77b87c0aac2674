"""murmur2 and the default partitioner, against the values Kafka's own tests use."""

from __future__ import annotations

import random

from mailroom.log import murmur2, partition_for, partitions_for

# Utils.murmur2 results from Apache Kafka's UtilsTest
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafka() -> None:
    for key, expect in KAFKA_VECTORS.items():
        assert murmur2(key) == expect, key


def test_batch_equals_one_by_one_for_mixed_lengths() -> None:
    rng = random.Random(3)
    keys = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    batch = partitions_for(keys, 13).tolist()
    assert batch == [partition_for(k, 13) for k in keys]
    assert batch == [(murmur2(k) & 0x7FFFFFFF) % 13 for k in keys]
    assert len(set(batch)) == 13
