"""mailroom: stream processing for email in flight.

A ksqlDB-like SQL layer over a Kafka Streams-like engine, on an embedded durable log (the
default: one machine, no set-up) or on Apache Kafka. Layers, imported downward only:
``log`` and ``formats``; ``state``; ``engine``; ``functions``; ``sql``; ``server``/``cli``/
``connect``; ``email`` (the flagship application).
"""

__version__ = "0.1.0"
