"""The Processor API: custom operators with declared stores and timers (stream and wall clock)."""

from __future__ import annotations

import orjson

from mailroom.engine import Processor, TestDriver, Topology


class StuckMail(Processor):
    """Remembers open messages; every minute (stream time) alerts on those idle for 4 hours."""

    stores = ["open-messages"]
    FINAL = {"delivered", "bounced", "expired"}
    IDLE = 4 * 3600_000

    def init(self, ctx) -> None:
        super().init(ctx)
        self.open = ctx.kv_store("open-messages")
        self.schedule(60_000, self.sweep)

    def process(self, batch) -> None:
        for key, ev, ts in zip(batch.keys, batch.rows(), batch.timestamps.tolist()):
            if ev["type"] in self.FINAL:
                self.open.delete(key.encode())
            else:
                self.open.put(key.encode(), orjson.dumps({"last": ev["type"], "ts": ts}))

    def sweep(self, now: int) -> None:
        keys, values, stamps = [], [], []
        for kb, raw in list(self.open.items()):
            st = orjson.loads(raw)
            if now - st["ts"] >= self.IDLE:
                keys.append(kb.decode())
                values.append({"alert": "stuck", "last": st["last"], "idle_ms": now - st["ts"]})
                stamps.append(now)
                self.open.delete(kb)
        self.emit(keys, values, stamps)


def stuck_topology() -> Topology:
    top = Topology()
    top.stream("events").process(StuckMail).to("alerts")
    return top


def test_stream_time_timer_alerts_on_stuck_messages_only() -> None:
    d = TestDriver(stuck_topology())
    h = 3600_000
    d.pipe_input("events", "m1", {"type": "queued"}, timestamp=0)
    d.pipe_input("events", "m2", {"type": "queued"}, timestamp=0)
    d.pipe_input("events", "m2", {"type": "delivered"}, timestamp=h)  # m2 finished
    d.pipe_input("events", "m3", {"type": "deferred"}, timestamp=2 * h)
    assert d.read_output("alerts") == []
    d.pipe_input("events", "m4", {"type": "queued"}, timestamp=4 * h + 60_000)  # stream time: 4h01
    out = d.read_output("alerts")
    assert [(o.key, o.value["last"]) for o in out] == [("m1", "queued")]
    assert out[0].value["idle_ms"] >= 4 * h
    d.pipe_input("events", "m5", {"type": "queued"}, timestamp=6 * h + 120_000)
    assert [o.key for o in d.read_output("alerts")] == ["m3"]  # m1 alerted once only


def ticker(fired: list[int]) -> TestDriver:
    """A driver over a processor whose stream-time timer (every 1000 ms) notes when it fired."""

    class Ticker(Processor):
        def init(self, ctx) -> None:
            super().init(ctx)
            self.schedule(1000, fired.append)

    top = Topology()
    top.stream("in").process(Ticker).to("out")
    return TestDriver(top)


def test_stream_time_timer_fires_once_when_time_jumps() -> None:
    fired: list[int] = []
    d = ticker(fired)
    # as in Kafka Streams, the first record processed triggers the first punctuation (its batch
    # may span many intervals: waiting for the next boundary could wait for records never coming)
    d.pipe_input("in", "k", {"x": 1}, timestamp=500)
    assert fired == [500]
    d.pipe_input("in", "k", {"x": 1}, timestamp=900)  # next due at 1000
    assert fired == [500]
    d.pipe_input("in", "k", {"x": 1}, timestamp=5500)  # several intervals at once: fires once
    assert fired == [500, 5500]
    d.pipe_input("in", "k", {"x": 1}, timestamp=5900)
    assert fired == [500, 5500]
    d.pipe_input("in", "k", {"x": 1}, timestamp=6000)
    assert fired == [500, 5500, 6000]


def test_a_batch_spanning_intervals_is_punctuated_though_no_record_follows() -> None:
    fired: list[int] = []
    d = ticker(fired)
    d.pipe_batch("in", [("k", {"x": i}, i * 100) for i in range(100)])  # 0 .. 9.9 s in one batch
    assert fired == [9900]


def test_wall_clock_timer_fires_without_input() -> None:
    class Heartbeat(Processor):
        def init(self, ctx) -> None:
            super().init(ctx)
            self.schedule(10_000, self.beat, wall_clock=True)

        def beat(self, now: int) -> None:
            self.emit(["hb"], [{"at": now}], [now])

    top = Topology()
    top.stream("in").process(Heartbeat).to("out")
    d = TestDriver(top)
    d.advance_wall_clock(1)  # arms the timer (due at 10s)
    d.advance_wall_clock(5_000)
    assert d.read_output("out") == []
    d.advance_wall_clock(5_000)
    assert [o.value for o in d.read_output("out")] == [{"at": 10_001}]


def test_failing_timer_goes_to_processing_log() -> None:
    class Broken(Processor):
        def init(self, ctx) -> None:
            super().init(ctx)
            self.schedule(100, self.boom)

        def boom(self, now: int) -> None:
            raise RuntimeError("kaput")

    top = Topology()
    top.stream("in").process(Broken).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "k", {"x": 1}, timestamp=0)
    d.pipe_input("in", "k", {"x": 1}, timestamp=250)  # the timer fails; processing goes on
    d.pipe_input("in", "k", {"x": 1}, timestamp=260)
    assert any("kaput" in str(e) for e in d.processing_log.entries)
