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


def _murmur2_reference(data: bytes) -> int:
    """Kafka's Utils.murmur2, transcribed line by line (unsigned 32-bit result)."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail, base = length % 4, length & ~3
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def test_equal_length_batches_match_the_reference() -> None:
    """The vectorized one-length path (strided views of the keys' bytes), for every tail
    length, from lists, Arrow arrays and sliced Arrow arrays (a data offset not 4-aligned)."""
    import pyarrow as pa

    from mailroom.log.partitioner import murmur2_batch

    for key, expect in KAFKA_VECTORS.items():  # the reference itself is right
        assert _murmur2_reference(key) == expect & 0xFFFFFFFF, key
    rng = random.Random(5)
    for length in range(0, 14):
        keys = [bytes(rng.getrandbits(8) for _ in range(length)) for _ in range(301)]
        expect = [_murmur2_reference(k) for k in keys]
        assert murmur2_batch(keys).tolist() == expect, length
        arr = pa.array(keys, type=pa.binary())
        assert murmur2_batch(arr).tolist() == expect, length
        assert murmur2_batch(arr.slice(3, 200)).tolist() == expect[3:203], length
        for parts in (1, 2, 4, 6, 64):  # powers of two take a mask instead of the modulo
            assert partitions_for(arr, parts).tolist() == [(h & 0x7FFFFFFF) % parts for h in expect]
