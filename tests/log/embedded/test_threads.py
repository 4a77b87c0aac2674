"""Several threads of one process sharing the embedded log (as the queries of one server do)."""

from __future__ import annotations

import threading

from mailroom.log import TopicPartition, open_log


def test_threads_resuming_a_group_all_start_at_the_committed_offset(tmp_path) -> None:
    # Regression: the partition's segment list was published (its folder mtime noted) before it
    # was read, so a second thread could see an empty list, find the committed offset "out of
    # range" and reset to the start: every record reprocessed.
    url = f"embedded:{tmp_path}"
    with open_log(url) as log:
        log.create_topic("t", partitions=4)
        with log.producer() as p:
            for part in range(4):
                p.send_batch("t", [b"v%d" % i for i in range(100)], partitions=[part] * 100)
            p.flush()
        c = log.consumer("g")
        c.assign([TopicPartition("t", q) for q in range(4)])
        c.commit({TopicPartition("t", q): 60 for q in range(4)})
        c.close()
    for _round in range(30):
        with open_log(url) as log:  # fresh partition objects: every thread races to list segments
            barrier = threading.Barrier(8)
            positions: list[int] = []

            def resume(q: int) -> None:
                barrier.wait()
                c = log.consumer("g")
                c.assign([TopicPartition("t", q % 4)])
                positions.append(c.position(TopicPartition("t", q % 4)))
                c.close()

            threads = [threading.Thread(target=resume, args=(q,)) for q in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert positions == [60] * 8
