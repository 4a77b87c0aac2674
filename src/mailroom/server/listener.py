"""The listener of ``mailroom server``: hypercorn serving the ASGI app.

Hypercorn, not uvicorn, because ksqlDB's clients speak HTTP/2: its Java client and
ksql-python-ng's ``inserts_stream`` and HTTP/2 queries open cleartext HTTP/2 with prior knowledge
(h2c), which hypercorn accepts on the same port as HTTP/1.1 (it also takes the ``Upgrade: h2c``
dance). With a certificate (``certfile``/``keyfile``) the port speaks TLS only, offering h2 and
http/1.1 by ALPN.

On SIGINT/SIGTERM, ``before_shutdown`` runs first (the server stops its push queries, so their
open responses end with a final message instead of holding the shutdown up), then hypercorn waits
up to ``graceful_timeout`` seconds for responses still open, then the app's lifespan closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any


def hypercorn_config(host: str, port: int, *, certfile: Path | None = None, keyfile: Path | None = None,
                     log_level: str = "warning", graceful_timeout: float = 10.0) -> Any:
    """A hypercorn Config listening on ``host:port`` (TLS when ``certfile`` and ``keyfile``)."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if certfile is not None:
        config.certfile, config.keyfile = str(certfile), str(keyfile)
    config.loglevel = log_level.upper()
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = graceful_timeout
    config.include_server_header = False
    return config


def serve(app: Any, config: Any, before_shutdown: Callable[[], None] | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (blocking)."""
    from hypercorn.asyncio import serve as hypercorn_serve

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def shutdown_trigger() -> None:
            await stop.wait()
            if before_shutdown is not None:
                await loop.run_in_executor(None, before_shutdown)

        await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger, mode="asgi")

    asyncio.run(main())
