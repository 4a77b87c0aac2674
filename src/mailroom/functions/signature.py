"""Type patterns of function parameters: concrete SQL types, DECIMAL of any precision, generics
(``T``), ``ANY``, ``ARRAY<T>``, ``MAP<STRING, V>``, any ``STRUCT`` and lambdas ``FN(T, U) -> V``.

    p = Pattern.parse("ARRAY<T>")
    bindings = {}
    p.match(SqlType.array(SqlType.INT), bindings, allow_cast=False)   # -> SqlType ARRAY<INT>
    Pattern.parse("T").resolve(bindings)                               # -> INT
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailroom.formats.types import BASE_TYPES, PRIMITIVES, SqlType

from .typing_rules import as_decimal, can_widen, common_type


@dataclass(frozen=True)
class LambdaType:
    """The type of a lambda argument: its parameter types and its body's result type."""

    params: tuple[SqlType, ...] | list[SqlType]
    result: SqlType

    def __str__(self) -> str:
        return "LAMBDA(" + ", ".join(str(p) for p in self.params) + f") -> {self.result}"


ArgType = SqlType | LambdaType | None


class _NoMatch(Exception):
    pass


@dataclass(frozen=True)
class Pattern:
    """kind: concrete | decimal | generic | any | array | map | struct | lambda."""

    kind: str
    type: SqlType | None = None
    name: str | None = None
    element: Pattern | None = None
    params: tuple[Pattern, ...] = ()

    # --- construction -------------------------------------------------------------------

    @staticmethod
    def of(x: Pattern | SqlType | str) -> Pattern:
        if isinstance(x, Pattern):
            return x
        if isinstance(x, SqlType):
            return Pattern("concrete", type=x)
        return Pattern.parse(x)

    @staticmethod
    def parse(text: str) -> Pattern:
        """Parse ``INT``, ``DECIMAL``, ``DECIMAL(10,2)``, ``T``, ``ANY``, ``ARRAY<T>``,
        ``MAP<STRING, V>``, ``STRUCT``, ``STRUCT<A INT>``, ``FN(T, S) -> S``."""
        p = _PatParser(text)
        out = p.pattern()
        p.end()
        return out

    # --- views --------------------------------------------------------------------------

    @property
    def is_lambda(self) -> bool:
        return self.kind == "lambda"

    def generics(self) -> set[str]:
        out = {self.name} if self.kind == "generic" and self.name else set()
        for c in (self.element, *self.params):
            if c is not None:
                out |= c.generics()
        return out

    def __str__(self) -> str:
        k = self.kind
        if k == "concrete":
            t = self.type
            assert t is not None
            return "INTEGER" if t.base == "INT" else str(t)
        if k == "decimal":
            return "DECIMAL"
        if k == "generic":
            return str(self.name)
        if k == "any":
            return "ANY"
        if k == "array":
            return f"ARRAY<{self.element}>"
        if k == "map":
            return f"MAP<STRING, {self.element}>"
        if k == "struct":
            return "STRUCT"
        return "LAMBDA(" + ", ".join(str(p) for p in self.params[:-1]) + f") -> {self.params[-1]}"

    # --- matching -----------------------------------------------------------------------

    def match(self, arg: ArgType, bindings: dict[str, SqlType], allow_cast: bool) -> tuple[SqlType | LambdaType | None, bool]:
        """Match an argument type; returns (the type the argument is used as, whether a cast is
        needed). Updates ``bindings``. Raises _NoMatch."""
        k = self.kind
        if arg is None:  # untyped NULL fits any parameter
            if k == "concrete":
                return self.type, False
            return None, False
        if k == "lambda":
            if not isinstance(arg, LambdaType):
                raise _NoMatch
            if len(arg.params) != len(self.params) - 1:
                raise _NoMatch
            for pp, at in zip(self.params[:-1], arg.params):
                pp.match(at, bindings, allow_cast)
            self.params[-1].match(arg.result, bindings, True)
            return arg, False
        if isinstance(arg, LambdaType):
            raise _NoMatch
        if k == "any":
            return arg, False
        if k == "concrete":
            t = self.type
            assert t is not None
            if arg == t:
                return t, False
            if allow_cast and can_widen(arg, t):
                return t, True
            raise _NoMatch
        if k == "decimal":
            if arg.base == "DECIMAL":
                return arg, False
            if allow_cast and arg.base in ("INT", "BIGINT"):
                return as_decimal(arg), True
            raise _NoMatch
        if k == "struct":
            if arg.base != "STRUCT":
                raise _NoMatch
            return arg, False
        if k == "generic":
            name = self.name
            assert name is not None
            bound = bindings.get(name)
            if bound is None:
                bindings[name] = arg
                return arg, False
            if bound == arg:
                return arg, False
            if not allow_cast:
                raise _NoMatch
            c = common_type(bound, arg)
            if c is None:
                raise _NoMatch
            bindings[name] = c
            return c, c != arg
        if k in ("array", "map"):
            if arg.base != k.upper():
                raise _NoMatch
            assert self.element is not None and arg.element is not None
            el, cast = self.element.match(arg.element, bindings, allow_cast)
            if el is None or isinstance(el, LambdaType):
                el = arg.element
            return (SqlType.array(el) if k == "array" else SqlType.map(el)), cast
        raise _NoMatch

    def resolve(self, bindings: dict[str, SqlType]) -> SqlType | None:
        """The concrete type of this pattern under ``bindings`` (None if a generic is unbound)."""
        k = self.kind
        if k == "concrete":
            return self.type
        if k == "generic":
            return bindings.get(self.name or "")
        if k in ("array", "map"):
            assert self.element is not None
            e = self.element.resolve(bindings)
            if e is None:
                return None
            return SqlType.array(e) if k == "array" else SqlType.map(e)
        return None


_PTOK = re.compile(r"\s*(->|[A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),])")


class _PatParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = []
        pos = 0
        while pos < len(text) and text[pos:].strip():
            m = _PTOK.match(text, pos)
            if not m:
                raise ValueError(f"cannot parse signature type {text!r}")
            self.toks.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> str:
        t = self.peek()
        if t is None:
            raise ValueError(f"cannot parse signature type {self.text!r}: unexpected end")
        self.i += 1
        return t

    def expect(self, t: str) -> None:
        got = self.next()
        if got != t:
            raise ValueError(f"cannot parse signature type {self.text!r}: expected {t!r}, got {got!r}")

    def end(self) -> None:
        if self.peek() is not None:
            raise ValueError(f"cannot parse signature type {self.text!r}: unexpected {self.peek()!r}")

    def pattern(self) -> Pattern:
        start = self.i
        word = self.next()
        up = word.upper()
        up = {"INTEGER": "INT", "VARCHAR": "STRING", "BOOL": "BOOLEAN"}.get(up, up)
        if up in PRIMITIVES:
            return Pattern("concrete", type=SqlType(up))
        if up == "ANY":
            return Pattern("any")
        if up == "DECIMAL":
            if self.peek() == "(":
                self.i = start
                return Pattern("concrete", type=SqlType.parse(self._rest_of_type()))
            return Pattern("decimal")
        if up == "ARRAY":
            self.expect("<")
            el = self.pattern()
            self.expect(">")
            return Pattern("array", element=el)
        if up == "MAP":
            self.expect("<")
            k = self.pattern()
            if k.kind != "concrete" or k.type != SqlType.STRING:
                raise ValueError(f"MAP keys must be STRING in {self.text!r}")
            self.expect(",")
            v = self.pattern()
            self.expect(">")
            return Pattern("map", element=v)
        if up == "STRUCT":
            if self.peek() == "<":
                self.i = start
                return Pattern("concrete", type=SqlType.parse(self._rest_of_type()))
            return Pattern("struct")
        if up in ("FN", "LAMBDA"):
            self.expect("(")
            params: list[Pattern] = []
            if self.peek() != ")":
                params.append(self.pattern())
                while self.peek() == ",":
                    self.next()
                    params.append(self.pattern())
            self.expect(")")
            self.expect("->")
            params.append(self.pattern())
            return Pattern("lambda", params=tuple(params))
        if up in BASE_TYPES:
            raise ValueError(f"cannot parse signature type {self.text!r}")
        return Pattern("generic", name=word)

    def _rest_of_type(self) -> str:
        # consume a balanced concrete type expression and return its text
        depth = 0
        parts: list[str] = []
        while True:
            t = self.peek()
            if t is None or (depth == 0 and t in (",", ")", ">") and parts and parts[-1] not in ("(",)):
                if t is None or depth == 0:
                    break
            self.i += 1
            parts.append(t)
            if t in ("<", "("):
                depth += 1
            elif t in (">", ")"):
                depth -= 1
                if depth == 0:
                    break
        return " ".join(parts).replace("< ", "<").replace(" >", ">")


@dataclass
class Match:
    """A successful match of arguments against one overload."""

    param_types: list[Any]
    casts: list[bool]
    bindings: dict[str, SqlType] = field(default_factory=dict)

    @property
    def needs_cast(self) -> bool:
        return any(self.casts)


def match_params(
    params: list[Pattern], variadic: int | None, args: list[ArgType], allow_cast: bool
) -> Match | None:
    """Match ``args`` against ``params`` (``variadic`` = index of the repeated parameter)."""
    n = len(args)
    if variadic is None:
        if n != len(params):
            return None
        expanded = list(params)
    else:
        fixed = len(params) - 1
        if n < fixed:
            return None
        nvar = n - fixed
        expanded = params[:variadic] + [params[variadic]] * nvar + params[variadic + 1 :]
    bindings: dict[str, SqlType] = {}
    # two passes: non-lambda arguments bind generics first, then lambdas
    types: list[Any] = [None] * n
    casts = [False] * n
    try:
        for i, (p, a) in enumerate(zip(expanded, args)):
            if not p.is_lambda:
                types[i], casts[i] = p.match(a, bindings, allow_cast)
        for i, (p, a) in enumerate(zip(expanded, args)):
            if p.is_lambda:
                types[i], casts[i] = p.match(a, bindings, allow_cast)
        # a generic widened after an earlier argument bound it: re-type those arguments
        if allow_cast:
            for i, (p, a) in enumerate(zip(expanded, args)):
                if not p.is_lambda and p.generics():
                    r = p.resolve(bindings)
                    if r is not None and a is not None and r != a:
                        if not isinstance(a, LambdaType) and not can_widen(a, r):
                            return None
                        types[i], casts[i] = r, True
    except _NoMatch:
        return None
    return Match(types, casts, bindings)
