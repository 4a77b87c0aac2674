"""The embedded log: durable, crash-safe, multi-process, batch-oriented; no set-up.

    from mailroom.log.embedded import EmbeddedLog
    log = EmbeddedLog("./data")
"""

from .log import EmbeddedLog

__all__ = ["EmbeddedLog"]
