"""The email application's pipelines: SQL scripts (``*.sql``) and Python pipelines (``*.py`` with ``topology()``)."""
