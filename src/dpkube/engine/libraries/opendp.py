"""OpenDP: a measurement sent as a JSON AST, rebuilt from allowlisted constructors only.

Lomas resolved any `opendp.<module>.<func>` by name with honest-but-curious on, which admits
user-defined transformations and feature toggles. Here only vetted constructors are callable,
the AST is bounded, and the measurement is priced by its own privacy map at d_in = max_ids.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import opendp
import opendp.combinators
import opendp.domains
import opendp.measurements
import opendp.measures
import opendp.metrics
import opendp.transformations
import pandas as pd
from opendp.mod import Measurement, PartialConstructor

from dpkube.engine import documents
from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.models.cost import Cost
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library, OpenDPPayload

LIBRARY = Library.OPENDP
INSTALLED_VERSION = importlib.metadata.version("opendp")
ACCEPTED_VERSIONS = ("0.10", "0.11", "0.12")
"""Major.minor lines of opendp whose ASTs are accepted: 0.10 as Lomas 0.3's clients send it, and
newer lines whose constructors are translated by name (RENAMES) to the installed 0.10."""

RENAMES = {
    ("combinators", "make_composition"): ("combinators", "make_basic_composition"),
}
"""Newer constructor names and the installed constructor they translate to (opendp renamed
make_basic_composition to make_composition after 0.10); names newer lines kept need no entry."""

MAX_DEPTH = 64
MAX_NODES = 2_000
MAX_STRING = 10_000
TYPE_NAME = re.compile(r"^[A-Za-z0-9_<>, ()]{1,128}$")

_TRANSFORMATIONS = (
    "b_ary_tree", "bounded_float_checked_sum", "bounded_float_ordered_sum",
    "bounded_int_monotonic_sum", "bounded_int_ordered_sum", "bounded_int_split_sum", "cast",
    "cast_default", "cast_inherent", "cdf", "clamp", "consistent_b_ary_tree", "count", "count_by",
    "count_by_categories", "count_distinct", "create_dataframe", "df_cast_default",
    "df_is_equal", "drop_null", "find", "find_bin", "identity", "impute_constant",
    "impute_uniform_float", "index", "is_equal", "is_null", "lipschitz_float_mul", "mean",
    "metric_bounded", "metric_unbounded", "ordered_random", "quantile_score_candidates",
    "quantiles_from_counts", "resize", "select_column", "sized_bounded_float_checked_sum",
    "sized_bounded_float_ordered_sum", "sized_bounded_int_checked_sum",
    "sized_bounded_int_monotonic_sum", "sized_bounded_int_ordered_sum",
    "sized_bounded_int_split_sum", "split_dataframe", "split_lines", "split_records",
    "subset_by", "sum", "sum_of_squared_deviations", "unordered", "variance",
)  # fmt: skip
_MEASUREMENTS = (
    "gaussian", "geometric", "laplace", "laplace_threshold", "randomized_response",
    "randomized_response_bool", "report_noisy_max_gumbel",
)  # fmt: skip


def _constructors(names: tuple[str, ...]) -> set[str]:
    """`make_` and, where opendp has one, `then_` forms of each name."""
    return {f"{prefix}_{name}" for name in names for prefix in ("make", "then")}


ALLOWED: dict[str, set[str]] = {
    "transformations": _constructors(_TRANSFORMATIONS),
    "measurements": _constructors(_MEASUREMENTS),
    "combinators": {
        "make_chain_tt", "make_chain_mt", "make_chain_pm", "make_basic_composition",
        "make_fix_delta", "make_pureDP_to_fixed_approxDP", "make_pureDP_to_zCDP",
        "make_zCDP_to_approxDP",
    },
    "domains": {"atom_domain", "vector_domain", "option_domain", "map_domain"},
    "metrics": {
        "symmetric_distance", "insert_delete_distance", "change_one_distance",
        "hamming_distance", "absolute_distance", "l1_distance", "l2_distance",
        "discrete_distance", "linf_distance",
    },
    "measures": {
        "max_divergence", "smoothed_max_divergence", "fixed_smoothed_max_divergence",
        "zero_concentrated_divergence",
    },
}  # fmt: skip
"""Constructors a pipeline may call. Excluded on purpose: user-defined transformations,
measurements, domains and distances; interactive queryables (sequential composition, ALP);
population amplification (trusts a user-declared population); polars plans; feature toggles."""

_MODULES = {
    "transformations": opendp.transformations,
    "measurements": opendp.measurements,
    "combinators": opendp.combinators,
    "domains": opendp.domains,
    "metrics": opendp.metrics,
    "measures": opendp.measures,
}
ALLOWED = {m: {f for f in names if hasattr(_MODULES[m], f)} for m, names in ALLOWED.items()}
INPUT_DOMAIN = "AtomDomain(T=String)"
"""What `run` gives a measurement: the table as header-less CSV text (as Lomas does)."""
ALLOWED_INPUT_METRICS = (
    "SymmetricDistance", "InsertDeleteDistance", "ChangeOneDistance", "HammingDistance",
)  # fmt: skip

opendp.domains.enable_features("contrib", "floating-point")


class _Builder:
    """Rebuilds an AST bottom-up, counting nodes and depth as it goes."""

    def __init__(self) -> None:
        self.nodes = 0

    def build(self, node: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise PayloadRejected(f"opendp_json has more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise PayloadRejected(f"opendp_json is nested deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, bool | int | float):
            return node
        if isinstance(node, str):
            if len(node) > MAX_STRING:
                raise PayloadRejected(f"opendp_json strings are limited to {MAX_STRING} characters")
            return node
        if isinstance(node, list):
            return tuple(self.build(item, depth + 1) for item in node)
        if not isinstance(node, dict):
            raise PayloadRejected(f"opendp_json holds an unsupported value of type {type(node).__name__}")
        kind = node.get("_type")
        if kind is None:
            return {self._key(k): self.build(v, depth + 1) for k, v in node.items()}
        if kind == "list":
            return [self.build(item, depth + 1) for item in self._items(node)]
        if kind == "type":
            return self._type(node.get("name"))
        if kind == "partial_chain":
            return self._chain(self.build(node.get("lhs"), depth + 1), self.build(node.get("rhs"), depth + 1))
        if kind == "constructor":
            return self._call(node, depth)
        raise PayloadRejected(
            f"opendp_json node type {kind!r} is not supported; accepted: constructor, partial_chain, list, type"
        )

    @staticmethod
    def _key(key: Any) -> str:
        if not isinstance(key, str) or key.startswith("_"):
            raise PayloadRejected(f"opendp_json object keys must be plain names, got {key!r}")
        return key

    @staticmethod
    def _items(node: dict[str, Any]) -> list[Any]:
        items = node.get("_items")
        if not isinstance(items, list):
            raise PayloadRejected("opendp_json list nodes need an _items array")
        return items

    @staticmethod
    def _type(name: Any) -> str:
        if not isinstance(name, str) or not TYPE_NAME.match(name):
            raise PayloadRejected(f"opendp_json type name {name!r} is not a valid OpenDP type")
        return name

    @staticmethod
    def _chain(lhs: Any, rhs: Any) -> Any:
        try:
            return lhs >> rhs
        except Exception as e:
            raise ExternalLibraryError(LIBRARY, f"Error chaining pipeline: {e}") from None

    def _call(self, node: dict[str, Any], depth: int) -> Any:
        named: tuple[Any, Any] = (node.get("module"), node.get("func"))
        if not all(isinstance(part, str) for part in named):
            raise PayloadRejected("opendp constructor module and func must be strings")
        module, func = RENAMES.get(named, named)
        if func not in ALLOWED.get(module, ()):
            raise PayloadRejected(
                f"opendp constructor {module}.{func} is not allowed; allowed are the built-in "
                "transformations, measurements, combinators, domains, metrics and measures "
                "(no user-defined functions, plugins or interactive queryables)"
            )
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise PayloadRejected(f"{module}.{func}: args must be an array and kwargs an object")
        built_args = [self.build(a, depth + 1) for a in args]
        built_kwargs = {self._key(k): self.build(v, depth + 1) for k, v in kwargs.items()}
        try:
            return getattr(_MODULES[module], func)(*built_args, **built_kwargs)
        except Exception as e:
            raise ExternalLibraryError(LIBRARY, f"Error building {module}.{func}: {e}") from None


def measurement(payload: OpenDPPayload) -> Measurement:
    """The payload's measurement, rebuilt from allowlisted constructors and checked for Lomas' rules."""
    document = documents.parse(payload.opendp_json, "opendp_json")
    if not isinstance(document, dict) or "ast" not in document:
        raise PayloadRejected('opendp_json must be an object {"version": ..., "ast": ...}')
    documents.check_version(document.get("version"), "opendp_json", ACCEPTED_VERSIONS,
                            installed=f"opendp {INSTALLED_VERSION}", bare_line=True)
    result = _Builder().build(document["ast"])
    if isinstance(result, PartialConstructor) or not isinstance(result, Measurement):
        raise InvalidQuery("The pipeline provided is not a measurement. It cannot be processed in this server.")
    if str(result.input_domain) != INPUT_DOMAIN:
        raise InvalidQuery(
            f"The pipeline must read the table as CSV text: its input domain must be {INPUT_DOMAIN}, "
            f"not {result.input_domain}."
        )
    if result.input_distance_type != "u32":
        raise InvalidQuery(f"The input distance type of the pipeline must be u32, not {result.input_distance_type}.")
    metric = str(result.input_metric)
    if not metric.startswith(ALLOWED_INPUT_METRICS):
        raise InvalidQuery(f"The input metric {metric} is not supported; accepted: {', '.join(ALLOWED_INPUT_METRICS)}.")
    return result


def _measure(meas: Measurement) -> str:
    return str(meas.output_measure).split("(")[0]


def _privacy_map(meas: Measurement, d_in: int) -> Any:
    """The measurement's privacy map at `d_in`: a number, an (epsilon, delta) pair or a curve, by output measure."""
    return meas.map(d_in)  # type: ignore[no-untyped-call]  # opendp leaves Measurement.map unannotated


def cost(payload: OpenDPPayload, metadata: Metadata) -> Cost:
    """The privacy map at d_in = max_ids; smoothed and zCDP curves read at `fixed_delta`. A zCDP measurement
    also carries its rho, its own privacy map's value (what a zCDP grant charges)."""
    meas = measurement(payload)
    kind, d_in = _measure(meas), metadata.max_ids
    fixed_delta = payload.fixed_delta or 0.0
    if kind in ("SmoothedMaxDivergence", "ZeroConcentratedDivergence") and not fixed_delta:
        raise InvalidQuery("fixed_delta must be set for smooth max divergence and zero concentrated divergence.")
    try:
        if kind == "MaxDivergence":
            return Cost(_privacy_map(meas, d_in), 0.0)
        if kind == "FixedSmoothedMaxDivergence":
            return Cost(*_privacy_map(meas, d_in))
        rho = None
        if kind == "ZeroConcentratedDivergence":
            rho = float(_privacy_map(meas, d_in))
            meas = opendp.combinators.make_zCDP_to_approxDP(meas)
        if kind in ("SmoothedMaxDivergence", "ZeroConcentratedDivergence"):
            curve = _privacy_map(meas, d_in)
            return Cost(curve.epsilon(delta=fixed_delta), fixed_delta, rho=rho)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error obtaining cost:{e}") from None
    raise InvalidQuery(f"The output measure {kind} is not supported.")


def run(payload: OpenDPPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """The raw release of the measurement on the table as header-less CSV text (Lomas' input)."""
    meas = measurement(payload)
    try:
        return meas(frame.to_csv(header=False, index=False))
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error executing query:{e}") from None
