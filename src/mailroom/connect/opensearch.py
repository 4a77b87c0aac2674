"""The OpenSearch sink: a topic's records as documents of an index, never losing one.

    from mailroom.log import open_log
    from mailroom.connect import OpenSearchSink

    with OpenSearchSink(open_log("embedded:./data"), "EMAIL_STATE", "email-state",
                        "http://127.0.0.1:9200", template={"mappings": {...}}) as sink:
        sink.run(idle_timeout=5)

It reads the topic as a consumer group, turns each record into a ``_bulk`` action (document id
= the record's key; a JSON object value indexes the document, a tombstone deletes it) and
commits the group's offsets only once every action of the polled records is settled: indexed,
or (a record OpenSearch refuses, e.g. a value that does not fit the mapping) written to the
processing log topic with its topic, partition, offset and the reason. While the server is
down, overloaded (429) or failing (5xx), the sink waits with exponential backoff and sends the
same records again, for as long as it takes: delivery is at least once, and since writes are by
document id, sending again never makes a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from ..engine.processing_log import ProcessingLog
from ..errors import CommitFailedError, MailroomError
from ..log import Consumer, Log, Producer, TopicPartition
from .bulk import RETRYABLE_STATUSES, WRITE_MODES, Action, IdExtractor, Rejected, encode, item_reason, outcome
from .retry import Backoff, Interrupted

logger = logging.getLogger("mailroom.connect")

OPERATOR = "opensearch-sink"


class SinkError(MailroomError):
    """OpenSearch refused the sink in a way that waiting will not fix (bad URL path, no
    permission, a template it rejects): nothing was committed, so a fixed sink resumes there."""


@dataclass
class SinkMetrics:
    """What the sink has done since it started."""

    records: int = 0  #: records read from the topic and settled (written or dead-lettered)
    indexed: int = 0  #: documents indexed or upserted
    deleted: int = 0  #: tombstones applied (document deleted, or already absent)
    failed: int = 0  #: records sent to the processing log instead
    retries: int = 0  #: requests or items sent again after a failure
    bulk_requests: int = 0  #: ``_bulk`` requests that got an answer
    commits: int = 0  #: offset commits
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The metrics as a plain dict (for JSON or logs)."""
        return asdict(self)


@dataclass
class _Pending:
    """Polled records not yet settled: the actions still to send and the offsets to commit after."""

    actions: list[Action]
    offsets: dict[TopicPartition, int]
    records: int


class OpenSearchSink:
    """Streams one topic into one OpenSearch index (see the module docstring).

    ``id_from``: ``"key"`` (the key as UTF-8 text), ``"key:json"`` or ``"value:FIELD"``.
    ``write``: ``"index"`` (the value replaces the document) or ``"upsert"`` (its fields are merged in).
    ``template``: an index template (a dict, or the path of a JSON file) put on start, and the
    index created from it if missing: either a full composable template (with ``index_patterns``)
    or just ``{"settings": ..., "mappings": ...}`` for this index.
    ``external_version``: make each record's offset its document's version, so a late copy of an
    old write (a timed-out request the server still ran) can never overwrite a newer document.
    Only safe while the topic keeps its offsets (not re-created): a lower offset is ignored.
    """

    def __init__(
        self,
        log: Log,
        topic: str,
        index: str,
        url: str,
        *,
        group: str | None = None,
        id_from: str = "key",
        batch: int = 1000,
        template: Mapping[str, Any] | str | Path | None = None,
        write: str = "index",
        external_version: bool = False,
        processing_log_topic: str | None = None,
        refresh: bool | str = False,
        request_timeout: float = 30.0,
        max_bulk_bytes: int = 5 * 1024 * 1024,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        poll_timeout: float = 0.5,
        client: OpenSearch | None = None,
    ) -> None:
        if write not in WRITE_MODES:
            raise ValueError(f"write must be one of {WRITE_MODES}, not {write!r}")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if external_version and write != "index":
            raise ValueError("external_version works with write='index' only (OpenSearch updates take no external version)")
        self.log, self.topic, self.index, self.url = log, topic, index, url
        self.group = group or f"opensearch-sink-{index}"
        self.ids = IdExtractor(id_from)
        self.batch, self.write, self.external_version = batch, write, external_version
        self.template = _load_template(template) if template is not None else None
        self.processing_log_topic = processing_log_topic or f"{self.group}-processing-log"
        self.refresh = refresh
        self.max_bulk_bytes = max_bulk_bytes
        self.poll_timeout = poll_timeout
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.client = client or OpenSearch(hosts=[url], timeout=request_timeout, max_retries=0, retry_on_timeout=False)
        self.metrics = SinkMetrics()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.processing_log: ProcessingLog | None = None
        self._pending: _Pending | None = None
        self._stop = False
        self._until: Callable[[], bool] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Put the template and create the index (waiting for the server if it is down), make the
        processing log topic, join the consumer group. :meth:`step` calls it when needed."""
        if self._consumer is not None:
            return
        if self.template is not None:
            self._retrying(self._setup_index, "index template")
        self.log.create_topic(self.processing_log_topic, exist_ok=True)
        self._producer = self.log.producer()
        self.processing_log = ProcessingLog(self._producer, self.processing_log_topic)
        consumer = self.log.consumer(self.group)
        consumer.subscribe([self.topic])
        self._consumer = consumer

    def stop(self) -> None:
        """Ask :meth:`run` (or a retrying :meth:`step`) to return soon; safe from a signal handler."""
        self._stop = True

    def close(self) -> None:
        """Leave the group and release the clients. Unsettled records stay uncommitted: the next
        sink of the group reads them again."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        self.client.close()

    def __enter__(self) -> OpenSearchSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop -----------------------------------------------------------------------------
    def step(self, timeout: float | None = None) -> int:
        """Poll once (waiting up to ``timeout`` seconds for records), write what came, commit.

        Returns how many records were settled and committed (0 when none came). While the server
        is unavailable this keeps retrying; after :meth:`stop` it returns 0 with the records kept
        for the next call (and uncommitted).
        """
        try:
            self.start()
            if self._pending is None:
                batches = self._consumer.poll(self.batch, self.poll_timeout if timeout is None else timeout)
                if not batches:
                    return 0
                self._pending = self._prepare(batches)
            self._flush(self._pending)
        except Interrupted:  # stop() while waiting for the server: the records stay pending
            return 0
        done, self._pending = self._pending, None
        self._commit(done)
        return done.records

    def run(self, until: Callable[[], bool] | None = None, idle_timeout: float | None = None) -> SinkMetrics:
        """Call :meth:`step` until :meth:`stop`, ``until()`` is true, or nothing came for
        ``idle_timeout`` seconds. Returns the metrics."""
        idle_since = time.monotonic()
        self._stop, self._until = False, until
        try:
            while not self._stopping():
                if self.step() or self._pending is not None:
                    idle_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    break
        finally:
            self._until = None
        return self.metrics

    # -- internals ----------------------------------------------------------------------------
    def _stopping(self) -> bool:
        if self._until is not None and self._until():
            self._stop = True
        return self._stop

    def _prepare(self, batches) -> _Pending:
        actions: list[Action] = []
        offsets: dict[TopicPartition, int] = {}
        records = 0
        for b in batches:
            records += len(b)
            offsets[b.topic_partition] = max(b.next_offset, offsets.get(b.topic_partition, 0))
            for a in encode(b, self.index, self.ids, write=self.write, external_version=self.external_version):
                if isinstance(a, Rejected):
                    self._dead_letter(a.reason, a.topic, a.partition, a.offset, a.key, a.value)
                else:
                    actions.append(a)
        return _Pending(actions, offsets, records)

    def _dead_letter(self, reason: str, topic: str, partition: int, offset: int, key, value) -> None:
        self.metrics.failed += 1
        self.processing_log.report(f"index '{self.index}': {reason}", operator=OPERATOR, topic=topic,
                                   partition=partition, offset=offset, key=key, value=value)

    def _flush(self, pending: _Pending) -> None:
        """Send ``pending.actions`` in order, chunk by chunk, until each is settled."""
        while pending.actions:
            size, n = 0, 0
            for a in pending.actions:
                if n and size + len(a.lines) > self.max_bulk_bytes:
                    break
                size += len(a.lines)
                n += 1
            settled = self._send_chunk(pending.actions[:n])
            del pending.actions[:settled]

    def _send_chunk(self, chunk: list[Action]) -> int:
        """Send one chunk; return how many of its leading actions are settled. Everything from the
        first item to retry onward is sent again (successes too: writes by id repeat harmlessly),
        which keeps the writes to any one document in offset order."""
        try:
            resp = self.client.bulk(body=b"".join(a.lines for a in chunk), params=self._bulk_params())
        except (OSConnectionError, TransportError) as e:
            status = getattr(e, "status_code", None)
            if status == 413 and len(chunk) > 1:  # too large for the server: halve the chunks
                self.max_bulk_bytes = max(1024, sum(len(a.lines) for a in chunk) // 2)
                self._retry_wait(f"request too large ({len(chunk)} actions); splitting", wait=False)
                return 0
            if status == 413:
                self._dead_letter("the document is larger than the server takes (HTTP 413)", chunk[0].topic,
                                  chunk[0].partition, chunk[0].offset, chunk[0].key, chunk[0].value)
                return 1
            if isinstance(e, OSConnectionError) or not isinstance(status, int) or status in RETRYABLE_STATUSES:
                self._retry_wait(f"bulk request failed: {_describe(e)}")
                return 0
            raise SinkError(f"OpenSearch at {self.url} refused the bulk request: {_describe(e)}") from e
        self.metrics.bulk_requests += 1
        items = resp.get("items", [])
        if len(items) != len(chunk):
            self._retry_wait(f"bulk answer has {len(items)} items for {len(chunk)} actions")
            return 0
        for i, (a, item) in enumerate(zip(chunk, items)):
            result = outcome(a.op, item, self.external_version)
            if result == "retry":
                self._retry_wait(f"item {a.doc_id} of {a.topic}[{a.partition}]@{a.offset}: {item_reason(item)}")
                return i
            if result == "failed":
                self._dead_letter(item_reason(item), a.topic, a.partition, a.offset, a.key, a.value)
            elif a.op == "delete":
                self.metrics.deleted += 1
            else:
                self.metrics.indexed += 1
        self.backoff.reset()
        return len(chunk)

    def _retry_wait(self, why: str, wait: bool = True) -> None:
        self.metrics.retries += 1
        self.metrics.last_error = why
        if wait:
            logger.warning("%s; retrying (attempt %d)", why, self.backoff.attempt + 1)
            self.backoff.wait(self._stopping)

    def _commit(self, done: _Pending) -> None:
        self._producer.flush()  # the processing log entries are durable before the offsets move on
        try:
            self._consumer.commit(done.offsets)
            self.metrics.commits += 1
        except CommitFailedError as e:
            # another member owns these partitions now and will write them again (by id: harmless)
            logger.warning("offsets not committed (%s); the partitions' new owner resumes from the last commit", e)
        self.metrics.records += done.records

    def _retrying(self, fn: Callable[[], None], what: str) -> None:
        while True:
            try:
                fn()
                self.backoff.reset()
                return
            except (OSConnectionError, TransportError) as e:
                status = getattr(e, "status_code", None)
                if not (isinstance(e, OSConnectionError) or not isinstance(status, int) or status in RETRYABLE_STATUSES):
                    raise SinkError(f"OpenSearch at {self.url} refused the {what}: {_describe(e)}") from e
                self._retry_wait(f"{what}: {_describe(e)}")

    def _setup_index(self) -> None:
        body = dict(self.template)
        name = body.pop("name", None) or f"mailroom-{self.index}"
        if "index_patterns" not in body:
            body = {"index_patterns": [self.index], "priority": 100, "template": body}
        self.client.indices.put_index_template(name=name, body=body)
        if not self.client.indices.exists(index=self.index):
            try:
                self.client.indices.create(index=self.index)
            except TransportError as e:
                if "resource_already_exists" not in str(getattr(e, "error", "")):
                    raise
        logger.info("index template %s put; index %s ready", name, self.index)

    def _bulk_params(self) -> dict[str, str]:
        if self.refresh is False:
            return {}
        return {"refresh": "true" if self.refresh is True else str(self.refresh)}


def _load_template(template: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(template, (str, Path)):
        try:
            body = orjson.loads(Path(template).read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise ValueError(f"cannot read the index template {template}: {e}") from None
    else:
        body = dict(template)
    if not isinstance(body, dict):
        raise ValueError("an index template must be a JSON object")
    return body


def _describe(e: Exception) -> str:
    status = getattr(e, "status_code", None)
    if isinstance(e, OSConnectionError):
        return f"cannot reach the server ({type(e).__name__}: {getattr(e, 'info', e)})"
    return f"HTTP {status} {getattr(e, 'error', '')} {getattr(e, 'info', '')}".strip()
