"""``python -m mailroom.email.pipelines``: print the SQL scripts' paths in dependency order (one a line),
for ``mailroom run $(python -m mailroom.email.pipelines) ...``."""

from . import sql_paths

for p in sql_paths():
    print(p)
