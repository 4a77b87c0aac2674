"""The Apache Kafka backend of the log, through confluent-kafka (librdkafka).

``open_log("kafka://HOST:PORT", **librdkafka_settings)``; settings such as
``security.protocol``, ``sasl.mechanism``, ``sasl.username``, ``ssl.ca.location`` are passed
through to every client it makes.
"""

from .consumer import KafkaConsumer
from .log import KafkaLog
from .producer import KafkaProducer

__all__ = ["KafkaConsumer", "KafkaLog", "KafkaProducer"]
