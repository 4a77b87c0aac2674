"""``mailroom sql``: an interactive SQL shell against a mailroom (or ksqlDB) server.

It speaks the ksqlDB REST API only (``/ksql`` for statements, ``/query-stream`` for queries,
``/close-query`` to cancel), so it works the same against any compatible server. Without a
server URL it starts one in-process on the embedded log (``--log``), on a free loopback port.

- statements end with ``;`` and may span lines; ``-- comments`` are fine
- push queries (``EMIT CHANGES``) stream rows until their LIMIT or Ctrl-C, which cancels the
  query and keeps the shell; Ctrl-D (or ``exit``) leaves
- ``RUN SCRIPT 'file.sql';`` runs a file's statements; ``PRINT topic [FROM BEGINNING] [LIMIT n];``
- history (``~/.mailroom_history``) and completion of keywords and stream/table names
- non-interactive: ``-e "stmt; stmt;"`` or ``-f file.sql``, with ``--json`` for one JSON object
  per result line (for scripts)
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from .options import LogOption

DELIMITED = "application/vnd.ksqlapi.delimited.v1"
KEYWORDS = (
    "SELECT FROM WHERE GROUP BY HAVING EMIT CHANGES FINAL LIMIT WINDOW TUMBLING HOPPING SESSION SIZE ADVANCE GRACE "
    "PERIOD RETENTION JOIN LEFT RIGHT FULL OUTER INNER ON WITHIN PARTITION AS AND OR NOT NULL IS IN LIKE BETWEEN CASE "
    "WHEN THEN ELSE END CAST CREATE STREAM TABLE OR REPLACE SOURCE INSERT INTO VALUES DROP DELETE TOPIC TERMINATE SHOW "
    "LIST STREAMS TABLES QUERIES TOPICS FUNCTIONS PROPERTIES DESCRIBE EXTENDED EXPLAIN PRINT BEGINNING SET UNSET "
    "DEFINE UNDEFINE VARIABLES RUN SCRIPT WITH KEY PRIMARY STRUCT ARRAY MAP STRING VARCHAR INT INTEGER BIGINT DOUBLE "
    "BOOLEAN DECIMAL TIMESTAMP DATE TIME BYTES KAFKA_TOPIC VALUE_FORMAT KEY_FORMAT PARTITIONS TIMESTAMP_FORMAT"
).split()


def split_statements(text: str) -> tuple[list[str], str]:
    """Complete statements (each ending with ``;``, outside quotes and comments) and the rest."""
    out: list[str] = []
    start, i, n = 0, 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                if i + 1 < n and text[i + 1] == quote:  # '' inside a string
                    i += 1
                else:
                    quote = None
        elif c in ("'", '"', "`"):
            quote = c
        elif c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == ";":
            stmt = text[start : i + 1].strip()
            if _strip_comments(stmt).strip(" ;\n\t"):
                out.append(stmt)
            start = i + 1
        i += 1
    return out, text[start:]


def _strip_comments(s: str) -> str:
    return re.sub(r"--[^\n]*", "", s)


def _first_words(stmt: str, k: int = 2) -> list[str]:
    return _strip_comments(stmt).upper().split()[:k]


class ServerClient:
    """The REST calls the shell makes."""

    def __init__(self, url: str, timeout: float = 60.0, auth: tuple[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, auth=auth)

    def info(self) -> dict[str, Any]:
        return self.http.get("/info").json()

    def statements(self, text: str, props: dict[str, Any]) -> list[dict[str, Any]]:
        r = self.http.post("/ksql", json={"ksql": text, "streamsProperties": props})
        body = r.json()
        return body if isinstance(body, list) else [body]

    def query(self, text: str, props: dict[str, Any], on_start: Callable[[str | None], None] | None = None
              ) -> Iterator[dict[str, Any] | list[Any]]:
        """The header object, then one list per row (an error: a dict with ``message``)."""
        with self.http.stream("POST", "/query-stream", json={"sql": text, "properties": props},
                              headers={"Accept": DELIMITED}, timeout=httpx.Timeout(60.0, read=None)) as r:
            if r.status_code != 200:
                r.read()
                yield r.json()
                return
            first = True
            for line in r.iter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if first and isinstance(item, dict) and on_start:
                    on_start(item.get("queryId"))
                first = False
                yield item

    def close_query(self, query_id: str) -> None:
        try:
            self.http.post("/close-query", json={"queryId": query_id}, timeout=5)
        except httpx.HTTPError:
            pass

    def names(self) -> list[str]:
        out: list[str] = []
        for stmt in ("SHOW STREAMS;", "SHOW TABLES;"):
            try:
                for ent in self.statements(stmt, {}):
                    for s in ent.get("streams", []) + ent.get("tables", []):
                        out.append(s["name"])
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        return out


class Shell:
    """Runs statements and prints their results (a rich table, or JSON lines with ``json_out``)."""

    def __init__(self, client: ServerClient, console: Console | None = None, json_out: bool = False) -> None:
        self.client = client
        self.console = console or Console()
        self.json_out = json_out
        self.props: dict[str, Any] = {}
        self.failed = False
        self._query_id: str | None = None

    # -- running ----------------------------------------------------------------------------
    def run_text(self, text: str) -> None:
        stmts, rest = split_statements(text)
        if _strip_comments(rest).strip():
            stmts.append(rest.strip() + ";")
        for stmt in stmts:
            self.run(stmt)

    def run(self, stmt: str) -> None:
        words = _first_words(stmt, 3)
        if not words:
            return
        if words[0] == "RUN" and len(words) > 1 and words[1] == "SCRIPT":
            m = re.search(r"'((?:[^']|'')*)'", stmt)
            if not m:
                return self._error("RUN SCRIPT needs a quoted file name: RUN SCRIPT 'file.sql';")
            path = Path(m.group(1).replace("''", "'")).expanduser()
            try:
                text = path.read_text()
            except OSError as e:
                return self._error(f"cannot read {path}: {e.strerror}")
            return self.run_text(text)
        if words[0] == "SET" and re.match(r"(?is)^\s*SET\s+'", _strip_comments(stmt)):
            m = re.match(r"(?is)^\s*SET\s+'([^']+)'\s*=\s*'([^']*)'", _strip_comments(stmt))
            if m:
                self.props[m.group(1)] = m.group(2)
                return self._note(f"Successfully changed local property '{m.group(1)}' to '{m.group(2)}'.")
        if words[0] == "UNSET":
            m = re.match(r"(?is)^\s*UNSET\s+'([^']+)'", _strip_comments(stmt))
            if m:
                self.props.pop(m.group(1), None)
                return self._note(f"Successfully unset local property '{m.group(1)}'.")
        if words[0] in ("SELECT", "PRINT"):
            return self.query(stmt)
        try:
            entities = self.client.statements(stmt, self.props)
        except httpx.HTTPError as e:
            return self._error(f"cannot reach the server at {self.client.url}: {e}")
        for ent in entities:
            self.show_entity(ent)

    def query(self, stmt: str) -> None:
        header: dict[str, Any] | None = None
        table: _RowPrinter | None = None
        rows = 0
        try:
            for item in self.client.query(stmt, self.props, on_start=lambda qid: setattr(self, "_query_id", qid)):
                if isinstance(item, dict) and ("message" in item or item.get("@type", "").endswith("error")):
                    return self._error(item.get("message", str(item)))
                if isinstance(item, dict) and header is None:
                    header = item
                    names = list(item.get("columnNames", []))
                    if self.json_out:
                        self._json({"header": item})
                    else:
                        table = _RowPrinter(self.console, names)
                    continue
                if isinstance(item, list):
                    rows += 1
                    if self.json_out:
                        self._json({"row": item})
                    elif table is not None:
                        table.row(item)
        except KeyboardInterrupt:
            if self._query_id:
                self.client.close_query(self._query_id)
            if not self.json_out:
                if table is not None:
                    table.end()
                self.console.print(f"Query terminated ({rows} rows)")
            return
        except httpx.HTTPError as e:
            return self._error(f"query failed: {e}")
        finally:
            self._query_id = None
        if table is not None:
            table.end()
            self.console.print(f"{rows} row{'s' if rows != 1 else ''}", style="dim")

    # -- output ----------------------------------------------------------------------------
    def _json(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()

    def _note(self, text: str) -> None:
        if self.json_out:
            self._json({"message": text})
        else:
            self.console.print(text)

    def _error(self, text: str) -> None:
        self.failed = True
        if self.json_out:
            self._json({"error": text})
        else:
            self.console.print(text, style="bold red", markup=False, highlight=False)

    def show_entity(self, ent: dict[str, Any]) -> None:
        if self.json_out:
            if ent.get("@type") in ("statement_error", "generic_error") or "error_code" in ent:
                self.failed = True
            return self._json(ent)
        kind = ent.get("@type", "")
        if "error_code" in ent or kind.endswith("_error"):
            return self._error(ent.get("message", str(ent)))
        if kind == "currentStatus":
            status = ent.get("commandStatus", {})
            return self.console.print(status.get("message", status.get("status", "")))
        if kind in ("streams", "tables"):
            items = ent.get(kind, [])
            return self._table([f"{kind[:-1].title()} Name", "Kafka Topic", "Key Format", "Value Format", "Windowed"],
                               [[s.get("name"), s.get("topic"), s.get("keyFormat"), s.get("valueFormat"), s.get("isWindowed")]
                                for s in items])
        if kind == "queries":
            return self._table(["Query ID", "Query Type", "Status", "Sink Name", "Query String"],
                               [[q.get("id"), q.get("queryType"), q.get("state") or q.get("status"), ",".join(q.get("sinks", [])),
                                 (q.get("queryString") or "")[:80]] for q in ent.get("queries", [])])
        if kind == "kafka_topics":
            return self._table(["Kafka Topic", "Partitions", "Partition Replicas"],
                               [[t.get("name"), len(t.get("replicaInfo", [])), ",".join(map(str, t.get("replicaInfo", [])))]
                                for t in ent.get("topics", [])])
        if kind == "sourceDescription":
            d = ent.get("sourceDescription", {})
            self.console.print(f"Name: {d.get('name')}  Type: {d.get('type')}  Topic: {d.get('topic')}  "
                               f"Key format: {d.get('keyFormat')}  Value format: {d.get('valueFormat')}")
            return self._table(["Field", "Type"], [[f.get("name"), _type_text(f)] for f in d.get("fields", [])])
        if kind == "function_names":
            return self._table(["Function Name", "Category"], [[f.get("name"), f.get("category")] for f in ent.get("functions", [])])
        if kind == "properties":
            return self._table(["Property", "Value"], [[p.get("name"), p.get("value")] for p in ent.get("properties", [])])
        self.console.print_json(json.dumps(ent, default=str))

    def _table(self, columns: list[str], rows: list[list[Any]]) -> None:
        t = Table(*columns, show_lines=False)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        self.console.print(t)


def _type_text(field: dict[str, Any]) -> str:
    s = field.get("schema", {})
    text = s.get("type", "")
    if field.get("type") == "KEY":
        text += " (key)"
    return text


class _RowPrinter:
    """Rows printed as they arrive, in aligned columns (a push query has no last row to wait for)."""

    def __init__(self, console: Console, names: list[str]) -> None:
        self.console = console
        self.widths = [max(12, len(n)) for n in names]
        self._rule()
        self._line(names)
        self._rule()

    def _rule(self) -> None:
        self.console.print("+" + "+".join("-" * (w + 2) for w in self.widths) + "+", markup=False, highlight=False)

    def _line(self, values: list[Any]) -> None:
        cells = []
        for v, w in zip(values, self.widths):
            text = "null" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
            cells.append(" " + (text if len(text) <= w else text[: w - 1] + "…").ljust(w) + " ")
        self.console.print("|" + "|".join(cells) + "|", markup=False, highlight=False, soft_wrap=True)

    def row(self, values: list[Any]) -> None:
        self._line(values)

    def end(self) -> None:
        self._rule()


def start_embedded(log_url: str, state_dir: Path) -> tuple[str, Callable[[], None]]:
    """A server in this process on a free loopback port: (its URL, a function that stops it)."""
    import uvicorn

    from ..server import KsqlServer, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = KsqlServer(log_url, state_dir)
    config = uvicorn.Config(create_app(srv), host="127.0.0.1", port=port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  (Ctrl-C belongs to the shell)
    thread = threading.Thread(target=server.run, name="mailroom-sql-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)

    return url, stop


def interactive(shell: Shell, history: Path) -> None:
    """The read-eval-print loop (prompt_toolkit: history, completion, multi-line input)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    def completer() -> WordCompleter:
        return WordCompleter(KEYWORDS + shell.client.names(), ignore_case=True, sentence=True)

    session: PromptSession = PromptSession(history=FileHistory(str(history)), completer=completer())
    shell.console.print("mailroom sql: statements end with ';'. Ctrl-C cancels a query, Ctrl-D leaves.", style="dim")
    buffer = ""
    while True:
        try:
            line = session.prompt("mailroom> " if not buffer else "       > ")
        except KeyboardInterrupt:
            buffer = ""
            continue
        except EOFError:
            break
        if not buffer and line.strip().lower() in ("exit", "quit", "exit;", "quit;"):
            break
        buffer += line + "\n"
        stmts, buffer = split_statements(buffer)
        if not _strip_comments(buffer).strip():
            buffer = ""
        for stmt in stmts:
            shell.run(stmt)
            if _first_words(stmt, 1)[0] in ("CREATE", "DROP"):
                session.completer = completer()


def sql(
    server: str | None = typer.Argument(None, help="Server URL (e.g. http://127.0.0.1:8088). Default: "
                                                   "a server in this process on --log."),
    execute: str | None = typer.Option(None, "--execute", "-e", help="Run these statements and exit."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Run this file's statements and exit."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per result line (for scripts)."),
    log_url: str = LogOption,
    state_dir: Path = typer.Option(Path(".mailroom/state"), "--state-dir", help="Local state of the in-process server."),
    user: str | None = typer.Option(None, "--user", "-u", help="Basic auth as USER:PASSWORD."),
) -> None:
    """An interactive SQL shell (or run -e/-f statements) against a mailroom or ksqlDB server."""
    stop = None
    if server is None:
        server, stop = start_embedded(log_url, state_dir)
    auth = tuple(user.split(":", 1)) if user and ":" in user else None
    client = ServerClient(server, auth=auth)  # type: ignore[arg-type]
    try:
        try:
            client.info()
        except httpx.HTTPError as e:
            typer.echo(f"cannot reach a server at {server} ({e}); start one with `mailroom server` or leave out the URL", err=True)
            raise typer.Exit(2) from None
        shell = Shell(client, json_out=json_out)
        if execute is not None or file is not None:
            text = execute if execute is not None else file.read_text()  # type: ignore[union-attr]
            shell.run_text(text)
            raise typer.Exit(1 if shell.failed else 0)
        interactive(shell, Path.home() / ".mailroom_history")
    finally:
        if stop is not None:
            stop()


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
