"""Helpers shared by the built-in families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import FunctionRegistry, Overload

O = Overload


def scalar(reg: FunctionRegistry, name: str, *overloads: Overload, description: str = "", category: str = "") -> None:
    reg.register_scalar(name, *overloads, description=description, author="mailroom", version="1", category=category)


def same_type(types: list[Any]) -> Any:
    """Return spec: the type of the first argument."""
    return types[0]


def returns_of(i: int) -> Callable[[list[Any]], Any]:
    return lambda types: types[i]
