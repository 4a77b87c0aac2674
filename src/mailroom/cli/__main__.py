"""``python -m mailroom.cli``: the same as the ``mailroom`` command."""

from .main import main

main()
