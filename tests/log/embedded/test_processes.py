"""Several processes sharing one embedded log."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from mailroom.log import TopicPartition, open_log

from ..test_conformance import drain

PRODUCER = textwrap.dedent(
    """
    import sys
    from mailroom.log import open_log
    log = open_log(sys.argv[1])
    p = log.producer()
    for i in range(200):
        p.send_batch("t", [b"%s-%d-%d" % (sys.argv[2].encode(), i, j) for j in range(50)], partition=0)
    """
)


def test_concurrent_producers_in_separate_processes(tmp_path) -> None:
    log = open_log(str(tmp_path))
    log.create_topic("t")
    procs = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(tmp_path), name]) for name in ("a", "b", "c")]
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    seen = drain(c, 30_000, timeout=60)  # read while they write
    for p in procs:
        assert p.wait(60) == 0
    seen += drain(c, None, timeout=2)
    assert [r.offset for r in seen] == list(range(30_000))
    for name in (b"a", b"b", b"c"):  # each producer's records in its own order
        mine = [r.value for r in seen if r.value.startswith(name + b"-")]
        assert mine == [b"%s-%d-%d" % (name, i, j) for i in range(200) for j in range(50)]


def test_dead_member_is_replaced(tmp_path) -> None:
    """A member whose process died loses its partitions to the live ones."""
    log = open_log(str(tmp_path))
    log.create_topic("t", partitions=4)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from mailroom.log import open_log
                c = open_log(sys.argv[1]).consumer("g")
                c.subscribe(["t"])
                print(len(c.assignment()), flush=True)
                while True:  # a live consumer polls (and so lets partitions go when the group asks)
                    c.poll(timeout=0.1)
                """
            ),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert int(child.stdout.readline()) == 4
    me = log.consumer("g")
    me.subscribe(["t"])
    deadline = time.monotonic() + 10
    while len(me.assignment()) != 2 and time.monotonic() < deadline:
        me.poll(timeout=0.1)
    assert len(me.assignment()) == 2
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while len(me.assignment()) != 4 and time.monotonic() < deadline:
        me.poll(timeout=0.1)
    assert len(me.assignment()) == 4
