"""``mailroom connect ...``: run connectors, added to the CLI through the ``mailroom.commands`` entry point.

- ``mailroom connect opensearch --topic T --index I --url URL [--group G] [--template FILE.json]``
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..cli.options import LogOption


def register(app: typer.Typer) -> None:
    """Add the ``connect`` command group to the ``mailroom`` CLI."""
    connect_app = typer.Typer(help="Stream topics into outside systems (OpenSearch, ...).", no_args_is_help=True)

    @connect_app.command("opensearch")
    def opensearch(
        topic: str = typer.Option(..., "--topic", "-t", help="The topic to read (any JSON-valued topic or table)."),
        index: str = typer.Option(..., "--index", "-i", help="The OpenSearch index to write to."),
        url: str = typer.Option(..., "--url", "-u", envvar="MAILROOM_OPENSEARCH_URL",
                                help="OpenSearch's URL, e.g. http://127.0.0.1:9200. Env: MAILROOM_OPENSEARCH_URL."),
        group: str | None = typer.Option(None, "--group", "-g", help="Consumer group (default opensearch-sink-INDEX)."),
        template: Path | None = typer.Option(None, "--template", help="Index template JSON ({settings, mappings}, "
                                             "or a full template with index_patterns), put on start."),
        id_from: str = typer.Option("key", "--id-from", help="Document id: 'key', 'key:json' or 'value:FIELD'."),
        write: str = typer.Option("index", "--write", help="'index' (replace the document) or 'upsert' (merge fields)."),
        batch: int = typer.Option(1000, "--batch", help="Records per poll and bulk request."),
        idle_timeout: float | None = typer.Option(None, "--idle-timeout",
                                                  help="Stop after this many seconds without records (default: run until Ctrl-C)."),
        log: str = LogOption,
    ) -> None:
        """Stream a topic into an OpenSearch index by document id (tombstones delete), at least once."""
        import json
        import logging
        import signal

        from ..log import open_log
        from .opensearch import OpenSearchSink, SinkError

        if template is not None and not template.exists():
            typer.echo(f"error: no such template file {template}", err=True)
            raise typer.Exit(1)
        with open_log(log) as lg:
            if topic not in lg.list_topics():
                typer.echo(f"error: unknown topic '{topic}' in {log}", err=True)
                raise typer.Exit(1)
            try:
                sink = OpenSearchSink(lg, topic, index, url, group=group, id_from=id_from, batch=batch,
                                      template=template, write=write)
            except ValueError as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(1) from None
            # the client logs a full traceback per failed request; the sink's one-line retry warnings suffice
            logging.getLogger("opensearch").setLevel(logging.CRITICAL)
            signal.signal(signal.SIGINT, lambda *_: sink.stop())
            signal.signal(signal.SIGTERM, lambda *_: sink.stop())
            with sink:
                try:
                    metrics = sink.run(idle_timeout=idle_timeout)
                except SinkError as e:
                    typer.echo(f"error: {e}", err=True)
                    raise typer.Exit(1) from None
        typer.echo(json.dumps(metrics.as_dict()))
        if metrics.failed:
            typer.echo(f"{metrics.failed} record(s) went to the processing log topic {sink.processing_log_topic}", err=True)

    app.add_typer(connect_app, name="connect")
