"""mailroom's function layer: the registry, the built-ins and the UDF/UDAF/UDTF API."""

from .api import LoadReport, builtin_registry, default_registry, load_entry_points, load_folder, udaf, udf, udtf
from .registry import (
    FunctionError,
    FunctionInfo,
    FunctionRegistry,
    Overload,
    ResolvedAggregate,
    ResolvedScalar,
    ResolvedTable,
    UnknownFunctionError,
)
from .signature import LambdaType
from .typing_rules import arithmetic_type, can_widen, common_type, decimal_arithmetic

__all__ = [
    "FunctionError", "FunctionInfo", "FunctionRegistry", "LambdaType", "LoadReport", "Overload",
    "ResolvedAggregate", "ResolvedScalar", "ResolvedTable", "UnknownFunctionError", "arithmetic_type",
    "can_widen", "common_type", "decimal_arithmetic", "default_registry", "load_entry_points", "load_folder",
    "udaf", "udf", "udtf",
]
