"""The function registry: scalar, aggregate and table functions with typed, overloaded signatures.

Resolution follows ksqlDB: first an overload that fits the argument types without implicit
casts (DECIMAL of any precision and generics bind freely); if none, overloads that fit with
widening (INT -> BIGINT -> DECIMAL -> DOUBLE). Several fitting overloads are ranked as ksqlDB's
UdfIndex does: non-variadic over variadic, then more parameters, then fewer generic parameters;
a tie at the top is ambiguous (so GREATEST(INT, DECIMAL) is: DECIMAL and DOUBLE fit equally).

    reg = FunctionRegistry()
    reg.register_scalar("ABS", Overload(["INT"], "INT", abs), Overload(["DOUBLE"], "DOUBLE", abs))
    r = reg.resolve_scalar("abs", [SqlType.INT])
    r.return_type, r.fn(-3)          # INT, 3
"""

from __future__ import annotations

import decimal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailroom.errors import MailroomError
from mailroom.formats.types import SqlType

from .signature import ArgType, LambdaType, Match, Pattern, match_params
from .typing_rules import type_name


class FunctionError(MailroomError):
    """A function could not be found, resolved or registered."""


class UnknownFunctionError(FunctionError):
    """No function of that name exists."""

    def __init__(self, name: str, kind: str = "function") -> None:
        self.name = name
        super().__init__(f"Can't find any functions with the name '{name}'" + (f" ({kind})" if kind != "function" else ""))


ReturnSpec = "SqlType | str | Callable[[list[Any]], SqlType]"


@dataclass
class Overload:
    """One signature of a function.

    params: parameter patterns (SqlType, or text like ``"ARRAY<T>"``, ``"DECIMAL"``, ``"FN(T) -> U"``).
    returns: a SqlType / pattern text resolved against the generics, or a callable taking the
        argument types (as coerced) and returning the SqlType.
    impl: the Python implementation (scalar: called with the values; aggregate: a factory).
    variadic: index of the parameter that repeats 0..n times (Java ``T...``), or None.
    strict: a NULL argument yields NULL without calling impl.
    pack_varargs: pass the variadic arguments as one list (needed when it is not the last param).
    """

    params: Sequence[Any]
    returns: Any
    impl: Callable[..., Any]
    variadic: int | None = None
    strict: bool = True
    description: str = ""
    pack_varargs: bool = False
    vectorized: Callable[..., Any] | None = None
    param_names: Sequence[str] | None = None
    #: strict applies only to these argument positions (None: all)
    strict_args: Sequence[int] | None = None

    def __post_init__(self) -> None:
        self.patterns = [Pattern.of(p) for p in self.params]
        if self.variadic is not None and self.variadic < 0:
            self.variadic = len(self.patterns) + self.variadic
        if self.variadic is not None and self.variadic != len(self.patterns) - 1:
            self.pack_varargs = True

    @property
    def is_variadic(self) -> bool:
        return self.variadic is not None

    def signature(self, name: str) -> str:
        parts = []
        for i, p in enumerate(self.patterns):
            s = str(p)
            if self.param_names and i < len(self.param_names):
                s = f"{self.param_names[i]} {s}"
            parts.append(s + ("..." if i == self.variadic else ""))
        ret = self.returns if not callable(self.returns) or isinstance(self.returns, SqlType) else "computed"
        return f"{name.upper()}({', '.join(parts)}) -> {ret if not isinstance(ret, SqlType) else type_name(ret)}"

    def return_type(self, m: Match) -> SqlType:
        r = self.returns
        if isinstance(r, SqlType):
            return r
        if isinstance(r, str):
            t = Pattern.parse(r).resolve(m.bindings)
            if t is None:
                raise FunctionError(f"cannot infer the return type {r}: its type parameters are unbound (all NULL?)")
            return t
        return r(m.param_types)


@dataclass
class FunctionInfo:
    """Metadata for SHOW FUNCTIONS / DESCRIBE FUNCTION."""

    name: str
    kind: str  # SCALAR | AGGREGATE | TABLE
    description: str = ""
    author: str = ""
    version: str = ""
    category: str = ""
    path: str = "internal"
    overloads: list[Overload] = field(default_factory=list)
    #: function-level config keys the function reads (configurable UDFs)
    config_keys: tuple[str, ...] = ()

    def signatures(self) -> list[str]:
        return [o.signature(self.name) for o in self.overloads]


@dataclass
class ResolvedScalar:
    name: str
    return_type: SqlType
    fn: Callable[..., Any]
    param_types: list[Any]
    overload: Overload
    #: batch form: called with pyarrow arrays / polars Series, returns the same (None if absent)
    vectorized: Callable[..., Any] | None = None


@dataclass
class ResolvedAggregate:
    name: str
    return_type: SqlType
    initialize: Callable[[], Any]
    aggregate: Callable[..., Any]
    merge: Callable[[Any, Any], Any]
    result: Callable[[Any], Any]
    undo: Callable[..., Any] | None
    param_types: list[Any]
    #: the SQL type of the stored state (informational; state is msgpack-serializable)
    state_type: SqlType | None = None
    #: optional batch form ``aggregate_many(state, *columns) -> state``: each column is the list
    #: of one argument's values for a run of rows (in order, NULLs included); the result must be
    #: that of calling ``aggregate`` once per row. None: callers fold with ``aggregate``.
    aggregate_many: Callable[..., Any] | None = None
    #: the kind of ksqlDB's intermediate (state) type when it is not a primitive ("ARRAY", "MAP",
    #: "STRUCT"): a value format that cannot hold it (DELIMITED) cannot run the aggregation
    intermediate_base: str | None = None

    @property
    def supports_undo(self) -> bool:
        return self.undo is not None


@dataclass
class ResolvedTable:
    name: str
    return_type: SqlType
    fn: Callable[..., list]
    param_types: list[Any]


# --- value coercion for implicit casts ----------------------------------------------------------


def coerce_value(v: Any, to: Any) -> Any:
    """Convert a Python value to the representation of SQL type ``to`` after a widening."""
    if v is None or not isinstance(to, SqlType):
        return v
    b = to.base
    if b == "DOUBLE":
        return float(v) if not isinstance(v, float) else v
    if b == "DECIMAL":
        if isinstance(v, decimal.Decimal):
            return v
        return decimal.Decimal(v)
    if b == "ARRAY" and isinstance(v, list):
        return [coerce_value(x, to.element) for x in v]
    if b == "MAP" and isinstance(v, dict):
        return {k: coerce_value(x, to.element) for k, x in v.items()}
    return v


def _make_caller(ov: Overload, m: Match, nargs: int) -> Callable[..., Any]:
    impl = ov.impl
    casts = [i for i, c in enumerate(m.casts) if c]
    targets = m.param_types
    strict = ov.strict
    strict_idx = None if ov.strict_args is None else set(ov.strict_args)
    pack = ov.pack_varargs and ov.variadic is not None
    vi = ov.variadic
    nvar = nargs - (len(ov.patterns) - 1) if vi is not None else 0

    if pack:
        assert vi is not None

        def call(*args: Any) -> Any:
            a = list(args)
            return impl(*a[:vi], a[vi : vi + nvar], *a[vi + nvar :])
    else:
        call = impl

    if not casts and not strict:
        return call

    def fn(*args: Any) -> Any:
        if strict:
            if strict_idx is None:
                if None in args:
                    return None
            elif any(args[i] is None for i in strict_idx if i < len(args)):
                return None
        if casts:
            args = tuple(coerce_value(a, targets[i]) if i in casts else a for i, a in enumerate(args))
        return call(*args)

    return fn


# --- the registry -------------------------------------------------------------------------------


class FunctionRegistry:
    """Holds functions by (upper-cased) name. Thread-safe for registration while resolving."""

    def __init__(self) -> None:
        self._scalars: dict[str, FunctionInfo] = {}
        self._aggs: dict[str, FunctionInfo] = {}
        self._tables: dict[str, FunctionInfo] = {}
        self._lock = threading.RLock()
        #: configuration passed to configurable functions (``ksql.functions.<name>.<key>``)
        self.config: dict[str, Any] = {}

    # --- registration ----------------------------------------------------------------------

    def _register(self, table: dict[str, FunctionInfo], kind: str, name: str, overloads: Sequence[Overload], **meta: Any) -> FunctionInfo:
        key = name.upper()
        with self._lock:
            for other_kind, other in (("SCALAR", self._scalars), ("AGGREGATE", self._aggs), ("TABLE", self._tables)):
                if other is not table and key in other:
                    raise FunctionError(f"function '{key}' already exists as a {other_kind} function")
            info = table.get(key)
            if info is None:
                info = FunctionInfo(key, kind)
                table[key] = info
            for k, v in meta.items():
                if v:
                    setattr(info, k, v)
            for ov in overloads:
                sig = (tuple(str(p) for p in ov.patterns), ov.variadic)
                for existing in info.overloads:
                    if (tuple(str(p) for p in existing.patterns), existing.variadic) == sig:
                        if not meta.get("replace"):
                            raise FunctionError(f"function '{key}' already has an overload {ov.signature(key)}")
                        info.overloads.remove(existing)
                        break
                info.overloads.append(ov)
            return info

    def register_scalar(self, name: str, *overloads: Overload, description: str = "", author: str = "", version: str = "", category: str = "", path: str = "", replace: bool = False) -> FunctionInfo:
        """Add overloads to scalar function ``name`` (created if new)."""
        return self._register(self._scalars, "SCALAR", name, overloads, description=description, author=author, version=version, category=category, path=path, replace=replace)

    def register_aggregate(self, name: str, *overloads: Overload, description: str = "", author: str = "", version: str = "", category: str = "", path: str = "", replace: bool = False) -> FunctionInfo:
        """Add aggregate overloads; each ``impl`` is a factory ``(arg_types, literal_args) -> object``
        with initialize/aggregate/merge/result and optionally undo and the batch form
        ``aggregate_many(state, *columns)`` (see ``ResolvedAggregate.aggregate_many``)."""
        return self._register(self._aggs, "AGGREGATE", name, overloads, description=description, author=author, version=version, category=category, path=path, replace=replace)

    def register_table(self, name: str, *overloads: Overload, description: str = "", author: str = "", version: str = "", category: str = "", path: str = "", replace: bool = False) -> FunctionInfo:
        """Add table-function overloads; ``returns`` is the type of each output row."""
        return self._register(self._tables, "TABLE", name, overloads, description=description, author=author, version=version, category=category, path=path, replace=replace)

    def unregister(self, name: str) -> bool:
        key = name.upper()
        with self._lock:
            return any(t.pop(key, None) is not None for t in (self._scalars, self._aggs, self._tables))

    # --- lookup ----------------------------------------------------------------------------

    def kind_of(self, name: str) -> str | None:
        """SCALAR, AGGREGATE, TABLE or None."""
        key = name.upper()
        if key in self._scalars:
            return "SCALAR"
        if key in self._aggs:
            return "AGGREGATE"
        if key in self._tables:
            return "TABLE"
        return None

    def is_aggregate(self, name: str) -> bool:
        return name.upper() in self._aggs

    def is_table_function(self, name: str) -> bool:
        return name.upper() in self._tables

    def has(self, name: str) -> bool:
        return self.kind_of(name) is not None

    def _info(self, table: dict[str, FunctionInfo], name: str, kind: str) -> FunctionInfo:
        info = table.get(name.upper())
        if info is None:
            raise UnknownFunctionError(name, kind if self.has(name) else "function")
        return info

    def _choose(self, info: FunctionInfo, args: list[ArgType]) -> tuple[Overload, Match]:
        lname = info.name.lower()
        for allow_cast in (False, True):
            found: list[tuple[Overload, Match]] = []
            for ov in info.overloads:
                m = match_params(ov.patterns, ov.variadic, list(args), allow_cast)
                if m is not None:
                    found.append((ov, m))
            if not found:
                continue
            if len(found) == 1:
                return found[0]
            # ksqlDB's UdfIndex: the best candidate by (non-variadic, more parameters, fewer
            # generic parameters) wins; a tie at the top is ambiguous
            found.sort(key=lambda f: _rank(f[0]), reverse=True)
            if _rank(found[0][0]) > _rank(found[1][0]):
                return found[0]
            raise FunctionError(
                f"Function '{lname}' cannot be resolved due to ambiguous method parameters "
                f"({', '.join(_arg_name(a) for a in args)}).\n" + self._alternatives(info)
            )
        raise FunctionError(
            f"Function '{lname}' does not accept parameters ({', '.join(_arg_name(a) for a in args)}).\n"
            + self._alternatives(info)
        )

    @staticmethod
    def _alternatives(info: FunctionInfo) -> str:
        return "Valid alternatives are:\n" + "\n".join(info.signatures())

    def resolve_scalar(self, name: str, arg_types: list[ArgType]) -> ResolvedScalar:
        """Pick the overload of scalar function ``name`` for ``arg_types`` (None = NULL literal,
        LambdaType for lambda arguments). Raises UnknownFunctionError / FunctionError."""
        info = self._info(self._scalars, name, "scalar")
        ov, m = self._choose(info, list(arg_types))
        rt = ov.return_type(m)
        return ResolvedScalar(info.name, rt, _make_caller(ov, m, len(arg_types)), m.param_types, ov, ov.vectorized)

    def lambda_param_types(self, name: str, arg_types_before: list[ArgType], lambda_position: int) -> list[SqlType]:
        """The parameter types of the lambda at ``lambda_position`` given the types of the
        arguments before it (so the analyzer can type the lambda body)."""
        info = self._info(self._scalars, name, "scalar")
        for allow_cast in (False, True):
            for ov in info.overloads:
                if lambda_position >= len(ov.patterns):
                    continue
                lp = ov.patterns[lambda_position]
                if not lp.is_lambda:
                    continue
                prefix = ov.patterns[:lambda_position]
                m = match_params(prefix, None, list(arg_types_before[:lambda_position]), allow_cast)
                if m is None:
                    continue
                out = [p.resolve(m.bindings) for p in lp.params[:-1]]
                if any(t is None for t in out):
                    continue
                return out  # type: ignore[return-value]
        raise FunctionError(
            f"Function '{name.lower()}' takes no lambda at position {lambda_position + 1} after "
            f"({', '.join(_arg_name(a) for a in arg_types_before)}).\n" + self._alternatives(info)
        )

    def resolve_aggregate(self, name: str, arg_types: list[ArgType], literal_args: Sequence[Any] = (),
                          config: Mapping[str, Any] | None = None) -> ResolvedAggregate:
        """Resolve an aggregate. ``literal_args`` are its constant parameters (e.g. TOPK's k);
        ``config`` (the query's properties, over :attr:`config`) reaches an implementation with a
        ``configure(config)`` method (e.g. ``ksql.functions.collect_list.limit``)."""
        info = self._info(self._aggs, name, "aggregate")
        ov, m = self._choose(info, list(arg_types))
        rt = ov.return_type(m)
        impl = ov.impl(m.param_types, tuple(literal_args))
        if hasattr(impl, "configure"):
            impl.configure({**self.config, **(config or {})})
        casts = [i for i, c in enumerate(m.casts) if c]
        agg = impl.aggregate
        undo = getattr(impl, "undo", None)
        many = getattr(impl, "aggregate_many", None)
        if casts:
            targets = m.param_types

            def _co(vals: tuple) -> tuple:
                return tuple(coerce_value(v, targets[i]) if i in casts else v for i, v in enumerate(vals))

            raw_agg, raw_undo = agg, undo
            agg = lambda state, *vals: raw_agg(state, *_co(vals))  # noqa: E731
            if raw_undo is not None:
                undo = lambda state, *vals: raw_undo(state, *_co(vals))  # noqa: E731
            if many is not None:
                raw_many = many
                many = lambda state, *cols: raw_many(state, *[  # noqa: E731
                    [coerce_value(v, targets[i]) for v in c] if i in casts else c for i, c in enumerate(cols)])
        return ResolvedAggregate(
            info.name, rt, impl.initialize, agg, impl.merge, impl.result, undo, m.param_types,
            getattr(impl, "state_type", None), many, getattr(impl, "intermediate_base", None),
        )

    def resolve_table(self, name: str, arg_types: list[ArgType]) -> ResolvedTable:
        """Resolve a table function; ``.fn(*values)`` returns the list of output values."""
        info = self._info(self._tables, name, "table")
        ov, m = self._choose(info, list(arg_types))
        rt = ov.return_type(m)
        call = _make_caller(ov, m, len(arg_types))

        def fn(*args: Any) -> list:
            out = call(*args)
            return [] if out is None else list(out)

        return ResolvedTable(info.name, rt, fn, m.param_types)

    # --- metadata --------------------------------------------------------------------------

    def list_functions(self) -> list[FunctionInfo]:
        """Every function, sorted by name (SHOW FUNCTIONS)."""
        with self._lock:
            infos = [*self._scalars.values(), *self._aggs.values(), *self._tables.values()]
        return sorted(infos, key=lambda i: i.name)

    def get_info(self, name: str) -> FunctionInfo:
        for t in (self._scalars, self._aggs, self._tables):
            if name.upper() in t:
                return t[name.upper()]
        raise UnknownFunctionError(name)

    def describe(self, name: str) -> dict[str, Any]:
        """DESCRIBE FUNCTION: name, type, description, author, version, path and per-overload
        ``{"signature", "arguments", "returns", "description"}``."""
        info = self.get_info(name)
        overloads = []
        for ov in info.overloads:
            overloads.append(
                {
                    "signature": ov.signature(info.name),
                    "arguments": [
                        {"name": (ov.param_names[i] if ov.param_names and i < len(ov.param_names) else f"arg{i + 1}"),
                         "type": str(p) + ("..." if i == ov.variadic else "")}
                        for i, p in enumerate(ov.patterns)
                    ],
                    "returns": str(ov.returns) if not callable(ov.returns) or isinstance(ov.returns, SqlType) else "computed",
                    "description": ov.description,
                }
            )
        return {
            "name": info.name,
            "type": info.kind,
            "description": info.description,
            "author": info.author,
            "version": info.version,
            "category": info.category,
            "path": info.path,
            "overloads": overloads,
        }


def _rank(ov: Overload) -> tuple[int, int, int]:
    """How ksqlDB's UdfIndex orders candidate overloads (higher is better)."""
    return (0 if ov.is_variadic else 1, len(ov.patterns), -sum(1 for p in ov.patterns if p.generics()))


def _arg_name(a: ArgType) -> str:
    if isinstance(a, LambdaType):
        return str(a)
    return type_name(a)


# re-exports for the contract
from .typing_rules import can_widen, common_type  # noqa: E402

__all__ = [
    "FunctionError", "UnknownFunctionError", "FunctionRegistry", "Overload", "FunctionInfo",
    "ResolvedScalar", "ResolvedAggregate", "ResolvedTable", "LambdaType", "can_widen", "common_type",
    "coerce_value",
]
