"""A repartition sink sends a key to the same partition whatever else shares its batch."""

from mailroom.engine.operators.repartition import key_bytes
from mailroom.log import partitions_for


def test_a_string_key_hashes_the_same_beside_a_null_or_other_typed_key() -> None:
    alone = key_bytes(["gmail", "yahoo"]).to_pylist()
    mixed = key_bytes(["gmail", None, "yahoo", 7]).to_pylist()
    assert [mixed[0], mixed[2]] == alone == [b"gmail", b"yahoo"]
    parts_alone = partitions_for(key_bytes(["gmail", "yahoo"]), 4).tolist()
    parts_mixed = partitions_for(key_bytes(["gmail", None, "yahoo", 7]), 4).tolist()
    assert [parts_mixed[0], parts_mixed[2]] == parts_alone
