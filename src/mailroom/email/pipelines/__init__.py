"""The email application's pipelines: SQL scripts (``*.sql``) and Python pipelines (``*.py`` with ``topology()``).

The SQL scripts depend on each other (EMAIL_STATE reads EMAIL_EVENTS, CAMPAIGN_STATS reads
EMAIL_STATE), and ``mailroom run`` runs its files in the order given, so give them in
:data:`ORDER`::

    mailroom run $(python -m mailroom.email.pipelines) --log embedded:./data

or in Python: ``SqlExecutor(runtime, registry).execute_script(all_sql())``. Tables and streams
are described in docs/email-pipelines.md.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent
#: the SQL scripts in dependency order (scripts not named here come after, sorted)
ORDER: tuple[str, ...] = ("events", "email_state", "mta_health", "campaign_stats", "stuck_mail", "alerts")


def path(name: str) -> Path:
    """The file of the pipeline ``name`` (``"email_state"`` or ``"email_state.sql"``; a ``.py`` name as given)."""
    p = _HERE / (name if name.endswith((".sql", ".py")) else f"{name}.sql")
    if not p.is_file():
        raise FileNotFoundError(f"no email pipeline {name!r} in {_HERE}")
    return p


def sql_paths() -> list[Path]:
    """Every SQL script of the package, in dependency order."""
    found = {p.stem: p for p in _HERE.glob("*.sql")}
    return [found.pop(n) for n in ORDER if n in found] + [found[n] for n in sorted(found)]


def all_sql(names: list[str] | None = None) -> str:
    """The text of the SQL scripts (all of them, or the ``names`` given) in dependency order, as one script."""
    paths = sql_paths() if names is None else [path(n) for n in sorted(names, key=_rank)]
    return "\n".join(p.read_text() for p in paths)


def _rank(name: str) -> int:
    stem = name.rsplit(".", 1)[0] if name.endswith(".sql") else name
    return ORDER.index(stem) if stem in ORDER else len(ORDER)
