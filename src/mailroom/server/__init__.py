"""``mailroom server``: a ksqlDB-compatible REST API over the SQL layer and the engine.

    from mailroom.server import KsqlServer, create_app
    app = create_app(KsqlServer("embedded:/tmp/data", "/tmp/state"))   # an ASGI app

See :mod:`.app` for the endpoints and :mod:`.core` for what runs behind them.
"""

from .app import create_app
from .core import KsqlServer

__all__ = ["KsqlServer", "create_app"]
