"""The engine: stateful stream processing over the log (what Kafka Streams is to ksqlDB).

Build a :class:`Topology` with the DSL, run it with :class:`App` (on the embedded log or Kafka,
at-least-once or exactly-once, scaled out over processes), or test it with :class:`TestDriver`.
"""

from .aggregators import Aggregator, aggregator
from .app import AT_LEAST_ONCE, EXACTLY_ONCE, App
from .batch import Batch
from .driver import Output, TestDriver
from .processor import Processor
from .serdes import BYTES, INT64, JSON, MSGPACK, STRING, JsonColumnsSerde, Serde
from .topology import GroupedStream, Stream, Table, Topology
from .tables import GroupedTable
from .windows import JoinWindows, SessionWindows, TimeWindows, Windowed

__all__ = [
    "AT_LEAST_ONCE",
    "BYTES",
    "EXACTLY_ONCE",
    "INT64",
    "JSON",
    "MSGPACK",
    "STRING",
    "Aggregator",
    "App",
    "Batch",
    "GroupedStream",
    "GroupedTable",
    "JoinWindows",
    "JsonColumnsSerde",
    "Output",
    "Processor",
    "Serde",
    "SessionWindows",
    "Stream",
    "Table",
    "TestDriver",
    "TimeWindows",
    "Topology",
    "Windowed",
    "aggregator",
]
