"""Public API for user-defined functions.

    from mailroom.functions.api import udf, udaf, udtf

    @udf(name="domain_of", description="Domain of an address", author="mail-team", version="1.0")
    def domain_of(address: str) -> str:
        return address.rsplit("@", 1)[-1]

Types come from the hints (str STRING, int BIGINT, float DOUBLE, bool BOOLEAN, bytes BYTES,
datetime TIMESTAMP, date DATE, time TIME, list[X] ARRAY, dict[str, X] MAP, TypeVar generic,
Callable lambda); pass ``sql_types=[...]`` / ``returns=...`` (SqlType or text such as
"DECIMAL(10, 2)", "INT", "STRUCT<A INT>") where hints are ambiguous. A parameter hinted
``Optional[...]`` receives NULLs; otherwise a NULL argument yields NULL without a call.
Several functions decorated with the same name become overloads; ``*args`` is variadic.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.metadata
import importlib.util
import inspect
import sys
import threading
import traceback
import types as _types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailroom.formats.types import SqlType

from .registry import FunctionError, FunctionRegistry, Overload
from .signature import Pattern

_PY = {str: SqlType.STRING, int: SqlType.BIGINT, float: SqlType.DOUBLE, bool: SqlType.BOOLEAN, bytes: SqlType.BYTES,
       dt.datetime: SqlType.TIMESTAMP, dt.date: SqlType.DATE, dt.time: SqlType.TIME}

#: functions declared by decorators, collected by the loaders: list of (kind, name, builder)
_PENDING: list[tuple[str, str, Callable[[FunctionRegistry], None]]] = []
_PENDING_LOCK = threading.Lock()


def _spec(x: Any) -> Pattern:
    if isinstance(x, Pattern):
        return x
    if isinstance(x, SqlType):
        return Pattern.of(x)
    if isinstance(x, str):
        return Pattern.parse(x)
    return hint_to_pattern(x)


def hint_to_pattern(h: Any) -> Pattern:
    """The signature pattern of a Python type hint."""
    if h in _PY:
        return Pattern.of(_PY[h])
    if h is decimal.Decimal:
        return Pattern("decimal")
    if h is Any or h is object:
        return Pattern("any")
    if isinstance(h, typing.TypeVar):
        return Pattern("generic", name=h.__name__)
    origin = typing.get_origin(h)
    args = typing.get_args(h)
    if origin in (typing.Union, _types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return hint_to_pattern(rest[0])
    if origin is list:
        return Pattern("array", element=hint_to_pattern(args[0]) if args else Pattern("any"))
    if origin is dict:
        return Pattern("map", element=hint_to_pattern(args[1]) if len(args) == 2 else Pattern("any"))
    if origin in (Callable, getattr(__import__("collections.abc").abc, "Callable")):
        params, ret = args
        return Pattern("lambda", params=tuple(hint_to_pattern(p) for p in params) + (hint_to_pattern(ret),))
    raise FunctionError(f"cannot map Python type hint {h!r} to a SQL type: pass sql_types=/returns= explicitly")


def _optional(h: Any) -> bool:
    return typing.get_origin(h) in (typing.Union, _types.UnionType) and type(None) in typing.get_args(h)


def _hints(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolved forward refs: fall back to raw annotations
        return dict(getattr(fn, "__annotations__", {}))


def _signature_of(fn: Callable, sql_types: list | None, returns: Any, skip: int = 0) -> tuple[list[Pattern], Any, int | None, list[int], list[str]]:
    sig = inspect.signature(fn)
    hints = _hints(fn)
    params = [p for p in sig.parameters.values()][skip:]
    pats: list[Pattern] = []
    strict_idx: list[int] = []
    names: list[str] = []
    variadic = None
    for i, p in enumerate(params):
        if p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is p.VAR_POSITIONAL:
            variadic = len(pats)
        h = hints.get(p.name, Any)
        if sql_types is not None and len(pats) < len(sql_types) and sql_types[len(pats)] is not None:
            pats.append(_spec(sql_types[len(pats)]))
        else:
            pats.append(hint_to_pattern(h))
        if not _optional(h) and h is not Any:
            strict_idx.append(len(pats) - 1)
        names.append(p.name)
    if returns is None:
        rh = hints.get("return")
        if rh is None:
            raise FunctionError(f"{fn.__qualname__}: give a return type hint or returns=")
        if rh is decimal.Decimal:
            raise FunctionError(f"{fn.__qualname__}: DECIMAL results need returns='DECIMAL(p, s)' (or a callable)")
        returns = hint_to_pattern(rh)
    if isinstance(returns, Pattern):
        returns = returns.type if returns.kind == "concrete" else str(returns)
    elif isinstance(returns, str):
        p = Pattern.parse(returns)
        returns = p.type if p.kind == "concrete" else returns
    elif returns in _PY or typing.get_origin(returns) in (list, dict):
        p = hint_to_pattern(returns)
        returns = p.type if p.kind == "concrete" else str(p)
    return pats, returns, variadic, strict_idx, names


def _strict_args(strict_idx: list[int], variadic: int | None, n: int) -> Any:
    if variadic is None:
        return strict_idx
    # positions after the variadic shift; only fixed leading args can be strict by position
    return [i for i in strict_idx if i < variadic]


_COLLECTING = threading.local()


def _defer(kind: str, name: str, builder: Callable[[FunctionRegistry], None], registry: FunctionRegistry | None) -> None:
    """Register now into ``registry``; inside a loader, hand it to the loader; else into the default registry."""
    if registry is not None:
        builder(registry)
    elif getattr(_COLLECTING, "depth", 0):
        with _PENDING_LOCK:
            _PENDING.append((kind, name, builder))
    else:
        builder(default_registry())


def udf(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    description: str = "",
    author: str = "",
    version: str = "",
    sql_types: list | None = None,
    returns: Any = None,
    vectorized: bool = False,
    config: bool = False,
    registry: FunctionRegistry | None = None,
    overload_description: str = "",
):
    """Declare a scalar UDF (see the module doc).

    vectorized=True: the function takes and returns pyarrow arrays (or polars Series); the row
    path calls it with one-element arrays, the batch path with whole columns (``.vectorized``).
    config=True: the first parameter receives the registry's config dict (configurable UDF:
    keys ``ksql.functions.<name>.*`` and global ``ksql.functions._global_.*``).
    registry: register right away into this registry (otherwise the loaders collect it).
    """

    def deco(f: Callable) -> Callable:
        fname = (name or f.__name__).upper()
        pats, ret, variadic, strict_idx, names = _signature_of(f, sql_types, returns, skip=1 if config else 0)

        def builder(reg: FunctionRegistry) -> None:
            impl = f
            if config:
                prefix = f"ksql.functions.{fname.lower()}."
                glob = "ksql.functions._global_."
                impl = lambda *a: f({k: v for k, v in reg.config.items() if k.lower().startswith((prefix, glob))}, *a)  # noqa: E731
            vec = None
            if vectorized:
                vec = impl
                impl = _row_from_vectorized(impl, pats, ret)
            ov = Overload(pats, ret, impl, variadic=variadic, strict=bool(strict_idx),
                          strict_args=_strict_args(strict_idx, variadic, len(pats)), description=overload_description or (f.__doc__ or "").strip(),
                          vectorized=vec, param_names=names)
            reg.register_scalar(fname, ov, description=description, author=author, version=version,
                                path=getattr(sys.modules.get(f.__module__), "__file__", "") or "", replace=True)

        _defer("SCALAR", fname, builder, registry)
        f.__mailroom_function__ = fname  # type: ignore[attr-defined]
        return f

    return deco(fn) if fn is not None else deco


def _row_from_vectorized(vf: Callable, pats: list[Pattern], ret: Any) -> Callable:
    import pyarrow as pa

    def row(*vals: Any) -> Any:
        arrays = [pa.array([v]) for v in vals]
        out = vf(*arrays)
        if hasattr(out, "to_pylist"):
            return out.to_pylist()[0]
        if hasattr(out, "to_list"):
            return out.to_list()[0]
        return list(out)[0]

    return row


def udaf(
    cls: type | None = None,
    *,
    name: str | None = None,
    description: str = "",
    author: str = "",
    version: str = "",
    sql_types: list | None = None,
    returns: Any = None,
    registry: FunctionRegistry | None = None,
):
    """Declare an aggregate as a class with ``initialize() -> state``, ``aggregate(state, *values)
    -> state``, ``merge(a, b) -> state``, ``map(state) -> result`` (or ``result``) and optionally
    ``undo(state, *values) -> state``, and optionally the batch form ``aggregate_many(state,
    *columns) -> state``: each column is the list of one argument's values for a run of rows
    (in row order, NULLs included), and the result must equal folding ``aggregate`` over the
    rows; the SQL layer then calls it once per key and batch (if it raises, the rows are
    folded one by one instead). Argument types come from ``aggregate``'s hints after the
    state; the result type from ``map``'s return hint or ``returns=``. The state must be
    msgpack-serializable. The constructor may take ``literal_args`` (constant parameters)."""

    def deco(c: type) -> type:
        fname = (name or c.__name__).upper()
        pats, _, variadic, _, names = _signature_of(c.aggregate, sql_types, SqlType.STRING, skip=2)
        res = getattr(c, "map", None) or getattr(c, "result")
        ret = returns
        if ret is None:
            _, ret, _, _, _ = _signature_of(res, [], None, skip=2)

        def factory(types: list[Any], literals: tuple) -> Any:
            try:
                inst = c(literals) if _takes_arg(c) else c()
            except TypeError:
                inst = c()
            return _UdafAdapter(inst)

        def builder(reg: FunctionRegistry) -> None:
            reg.register_aggregate(fname, Overload(pats, ret, factory, variadic=variadic, param_names=names),
                                   description=description, author=author, version=version, replace=True,
                                   path=getattr(sys.modules.get(c.__module__), "__file__", "") or "")

        _defer("AGGREGATE", fname, builder, registry)
        return c

    return deco(cls) if cls is not None else deco


def _takes_arg(c: type) -> bool:
    try:
        return len(inspect.signature(c).parameters) >= 1
    except (TypeError, ValueError):
        return False


class _UdafAdapter:
    def __init__(self, inst: Any) -> None:
        self.initialize = inst.initialize
        self.aggregate = inst.aggregate
        self.merge = getattr(inst, "merge", None) or (lambda a, b: a)
        self.result = getattr(inst, "map", None) or getattr(inst, "result")
        self.undo = getattr(inst, "undo", None)
        self.aggregate_many = getattr(inst, "aggregate_many", None)


def udtf(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    description: str = "",
    author: str = "",
    version: str = "",
    sql_types: list | None = None,
    returns: Any = None,
    registry: FunctionRegistry | None = None,
):
    """Declare a table function returning a list of rows; the SQL type of each row is the
    element type of the ``list[...]`` return hint, or ``returns=``."""

    def deco(f: Callable) -> Callable:
        fname = (name or f.__name__).upper()
        ret = returns
        if ret is None:
            rh = _hints(f).get("return")
            if typing.get_origin(rh) is not list or not typing.get_args(rh):
                raise FunctionError(f"{f.__qualname__}: a UDTF returns list[X]; give that hint or returns=")
            ret = typing.get_args(rh)[0]
        pats, ret2, variadic, strict_idx, names = _signature_of(f, sql_types, ret)

        def builder(reg: FunctionRegistry) -> None:
            reg.register_table(fname, Overload(pats, ret2, f, variadic=variadic, strict=bool(strict_idx),
                                               strict_args=_strict_args(strict_idx, variadic, len(pats)), param_names=names),
                               description=description, author=author, version=version, replace=True,
                               path=getattr(sys.modules.get(f.__module__), "__file__", "") or "")

        _defer("TABLE", fname, builder, registry)
        return f

    return deco(fn) if fn is not None else deco


# --- registries and loading ----------------------------------------------------------------------

_DEFAULT: FunctionRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def builtin_registry() -> FunctionRegistry:
    """A new registry holding only the built-ins."""
    from .builtins import register_all

    return register_all(FunctionRegistry())


def default_registry() -> FunctionRegistry:
    """The process-wide registry holding the built-ins (created on first use)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = builtin_registry()
        return _DEFAULT


@dataclass
class LoadFailure:
    path: str
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


@dataclass
class LoadReport:
    """What a loader did: the functions it registered (by name) and the files/entry points that failed."""

    loaded: list[str] = field(default_factory=list)
    failed: list[LoadFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _collect(run: Callable[[], None], registry: FunctionRegistry) -> list[str]:
    with _PENDING_LOCK:
        start = len(_PENDING)
    _COLLECTING.depth = getattr(_COLLECTING, "depth", 0) + 1
    try:
        run()
    except BaseException:
        with _PENDING_LOCK:
            del _PENDING[start:]
        raise
    finally:
        _COLLECTING.depth -= 1
    with _PENDING_LOCK:
        new = _PENDING[start:]
        del _PENDING[start:]
    names = []
    for _, fname, builder in new:
        builder(registry)
        names.append(fname)
    return names


def load_folder(path: str | Path, registry: FunctionRegistry | None = None) -> LoadReport:
    """Import every ``*.py`` file of ``path`` (sorted, not recursive, ``_``-prefixed skipped) and
    register the functions it declares. A file that fails to import is reported with its path
    and error; the others still load."""
    reg = registry if registry is not None else default_registry()
    report = LoadReport()
    folder = Path(path)
    if not folder.is_dir():
        report.failed.append(LoadFailure(str(folder), "not a directory"))
        return report
    for file in sorted(folder.glob("*.py")):
        if file.name.startswith("_"):
            continue
        modname = f"mailroom_udf_{abs(hash(str(file.resolve())))}_{file.stem}"

        def run(file: Path = file, modname: str = modname) -> None:
            spec = importlib.util.spec_from_file_location(modname, file)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(modname, None)
                raise

        try:
            report.loaded += _collect(run, reg)
        except Exception as e:  # noqa: BLE001 - report and continue with the other files
            report.failed.append(LoadFailure(str(file), f"{type(e).__name__}: {e}", traceback.format_exc()))
    return report


def load_entry_points(group: str = "mailroom.functions", registry: FunctionRegistry | None = None) -> LoadReport:
    """Load functions from installed packages: each entry point of ``group`` is imported; if it
    names a callable taking a registry it is called with it, otherwise importing the module
    registers its decorated functions."""
    reg = registry if registry is not None else default_registry()
    report = LoadReport()
    for ep in importlib.metadata.entry_points(group=group):
        def run(ep: Any = ep) -> None:
            obj = ep.load()
            if callable(obj) and not hasattr(obj, "__mailroom_function__"):
                try:
                    params = inspect.signature(obj).parameters
                except (TypeError, ValueError):
                    params = {}
                if len(params) == 1:
                    obj(reg)

        try:
            report.loaded += _collect(run, reg)
        except Exception as e:  # noqa: BLE001
            report.failed.append(LoadFailure(f"entry point {ep.name} = {ep.value}", f"{type(e).__name__}: {e}", traceback.format_exc()))
    return report
