import pytest

from mailroom.formats.types import SqlType
from mailroom.functions.api import builtin_registry


@pytest.fixture(scope="session")
def reg():
    return builtin_registry()


@pytest.fixture(scope="session")
def call(reg):
    def _call(name, *typed):
        types = [t for t, _ in typed]
        return reg.resolve_scalar(name, types).fn(*[v for _, v in typed])

    return _call


T = SqlType
