"""Connectors: topics to outside systems, generic over topics and schemas.

- :class:`OpenSearchSink` (:mod:`mailroom.connect.opensearch`): a topic (a table's changelog,
  say) into an OpenSearch index, by document id, at least once, with a processing log for
  records the index refuses.

This layer may use the log, formats and engine, never the SQL layer, the server or the email app.
"""

from __future__ import annotations

from .opensearch import OpenSearchSink, SinkError, SinkMetrics

__all__ = ["OpenSearchSink", "SinkError", "SinkMetrics"]
