"""smartnoise-sql: SQL aggregates over the one table `df`, priced by the library's own odometer.

Everything the query text decides (size, nesting, one table, mechanisms, the cost itself) is
checked in `cost`, before any data is read. In `run`, after the data is read, every failure is a
library error: an empty or NaN result depends on the noisy output, so it is charged like a
release. NaN aggregates are not retried (Lomas re-ran the query up to five more times for one
charge, i.e. up to six releases). Only numeric cells count: a null GROUP BY key (a missing
category) is a legitimate result.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import dpkube.engine.libraries.opendp_pca  # noqa: F401  (it must come before opendp's prelude)

# isort: split
import opendp.prelude as dp
import pandas as pd
import snsql
from opendp.typing import set_default_int_type
from snsql import Mechanism, Stat
from snsql._ast.ast import AliasedRelation, AliasedSubquery, Join, Table
from snsql.sql._mechanisms.gaussian import Gaussian
from snsql.sql._mechanisms.laplace import Laplace
from snsql.sql.parse import QueryParser
from snsql.sql.private_reader import PrivateReader
from snsql.sql.reader.base import SqlReader
from snsql.xpath.parse import XPath

from dpkube.engine.errors import ExternalLibraryError, PayloadRejected
from dpkube.models.cost import Cost
from dpkube.models.metadata import SMARTNOISE_SQL_TABLE, Metadata
from dpkube.models.payloads import Library, SmartnoiseSQLPayload

LIBRARY = Library.SMARTNOISE_SQL
MECHANISM_KEYS = ("count", "sum_int", "sum_large_int", "sum_float", "threshold")
SCALE_CACHE_SIZE = 4096
XPATH_CACHE_SIZE = 256


def _memoise_noise_scales() -> None:
    """Remember each mechanism's noise scale: smartnoise-sql binary-searches it (with OpenDP) for every
    aggregate of every query, most of a query's pricing time, although it is a pure function of the
    mechanism, epsilon, delta, bounds, contribution bound and bit depth. The same search answers the
    same scale, so pricing and release are unchanged; only the repeated search is gone."""
    scales: dict[tuple[Any, ...], float] = {}

    def memoised(search: Any, after_hit: Any) -> Any:
        def compute_noise_scale(self: Any) -> None:
            known = self.scale
            if known is not None:
                return
            key = (type(self), self.epsilon, self.delta, self.lower, self.upper, self.max_contrib, self.bit_depth)
            if key in scales:
                after_hit(self)
                self.scale = scales[key]
                return
            search(self)
            if len(scales) >= SCALE_CACHE_SIZE:
                scales.clear()
            scales[key] = self.scale

        return compute_noise_scale

    # The Gaussian search also sets OpenDP's default integer type for its bit depth: so does a hit.
    Gaussian._compute_noise_scale = memoised(
        Gaussian._compute_noise_scale, lambda m: set_default_int_type(f"i{m.bit_depth}"))
    Laplace._compute_noise_scale = memoised(Laplace._compute_noise_scale, lambda m: None)


_memoise_noise_scales()


def _memoise_xpaths() -> None:
    """Parse each XPath once: smartnoise-sql walks its query tree with a few constant XPath strings and parses
    each with ANTLR on every use, about a quarter of a query's pricing time. A parsed XPath holds only what
    its text says (its selectors evaluate on the node they are given), so sharing it changes no answer."""
    parse = XPath.parse

    @lru_cache(maxsize=XPATH_CACHE_SIZE)
    def parsed(statement: str) -> Any:
        return parse(XPath(), statement)

    XPath.parse = lambda self, statement: parsed(statement)


_memoise_xpaths()


def check_query(query_str: str) -> None:
    """One SELECT reading only `df`: no other table, join, subquery or second statement.

    The text is scanned for depth and size first: the parser is slow on deep nesting.
    """
    try:
        queries = QueryParser().queries(query_str)
    except Exception as e:
        raise PayloadRejected(f"query_str is not valid smartnoise-sql SQL: {e}") from None
    if len(queries) != 1:
        raise PayloadRejected(f"query_str must hold exactly one SELECT statement, got {len(queries)}")
    query = queries[0]
    if query.find_nodes(Join) or query.find_nodes(AliasedSubquery):
        raise PayloadRejected("query_str may not use joins or subqueries: read FROM df directly")
    if query.find_nodes(AliasedRelation):
        raise PayloadRejected("query_str may not alias relations: read FROM df directly")
    tables = {str(t.name) for t in query.find_nodes(Table)}
    others = sorted(t for t in tables if t.lower() != SMARTNOISE_SQL_TABLE)
    if others or not tables:
        raise PayloadRejected(
            f"query_str may read only the table {SMARTNOISE_SQL_TABLE!r}"
            + (f", not {', '.join(others)}" if others else "")
        )


def privacy(payload: SmartnoiseSQLPayload) -> snsql.Privacy:
    """The request's Privacy, with mechanism overrides checked against smartnoise-sql's names."""
    result = snsql.Privacy(epsilon=float(payload.epsilon), delta=float(payload.delta))
    for key, name in payload.mechanisms.items():
        if key not in MECHANISM_KEYS:
            raise PayloadRejected(
                f"mechanisms key {key!r} is not supported; accepted keys: {', '.join(MECHANISM_KEYS)}"
            )
        if name not in Mechanism.__members__:
            raise PayloadRejected(
                f"mechanism {name!r} for {key} is unknown; accepted: {', '.join(Mechanism.__members__)}"
            )
        result.mechanisms.map[Stat[key]] = Mechanism[name]
    return result


@lru_cache(maxsize=64)
def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _reader(metadata: Metadata, frame: pd.DataFrame, payload: SmartnoiseSQLPayload) -> Any:
    return snsql.from_df(frame, privacy=privacy(payload), metadata=metadata.smartnoise_sql())


@lru_cache(maxsize=16)
def _empty_table_reader(metadata_json: str) -> Any:
    """The SQL reader over an empty frame of a metadata: building it copies the frame into SQLite, so it
    is built once per metadata; pricing never executes anything on it."""
    metadata = Metadata.model_validate_json(metadata_json)
    return SqlReader.from_connection(_empty_frame(tuple(metadata.columns)), metadata=metadata.smartnoise_sql())


@lru_cache(maxsize=SCALE_CACHE_SIZE)
def gaussian_rho(lower: float, upper: float, max_contrib: int, scale: float, bit_depth: int) -> float:
    """The rho of one smartnoise-sql Gaussian mechanism: the privacy map, at its contribution bound, of the
    OpenDP measurement the library calibrates its scale on (a clamped sum, then Gaussian noise)."""
    set_default_int_type(f"i{bit_depth}")
    bounds = (float(math.floor(lower)), float(math.ceil(upper)))
    space = (dp.vector_domain(dp.atom_domain(T=float)), dp.symmetric_distance())
    clamped_sum = space >> dp.t.then_clamp(bounds=bounds) >> dp.t.then_sum()  # type: ignore[no-untyped-call]
    return float((clamped_sum >> dp.m.then_gaussian(scale)).map(max_contrib))


def zcdp_rho(reader: PrivateReader, query_str: str) -> float | None:
    """The query's rho: the sum over its mechanisms, each read from the mechanism object smartnoise-sql builds
    for it, with the noise scale it really uses. None when some release is not zCDP: a mechanism other than
    Gaussian, or groups thresholded on a noisy count (censor_dims), whose cost is an (epsilon, delta) one."""
    if Mechanism.gaussian not in reader.privacy.mechanisms.map.values():
        return None  # no release can be Gaussian: spare every Laplace query a second rewrite when pricing
    parsed = reader.parse_query_string(query_str)
    if parsed.agg is not None and parsed.agg.groupingExpressions and parsed.censor_dims:
        return None
    reader._refresh_options()
    subquery, _ = reader._rewrite(query_str)
    mechanisms = [m for m in reader._get_mechanisms(subquery) if m is not None]
    if not mechanisms or not all(isinstance(m, Gaussian) for m in mechanisms):
        return None
    return sum(gaussian_rho(m.lower, m.upper, m.max_contrib, m.scale, m.bit_depth) for m in mechanisms)


def cost(payload: SmartnoiseSQLPayload, metadata: Metadata) -> Cost:
    """smartnoise-sql's `get_privacy_cost`, on a reader over an empty frame (no data is read), and the rho of
    its Gaussian mechanisms when every release is zCDP."""
    check_query(payload.query_str)
    reader = PrivateReader(_empty_table_reader(metadata.model_dump_json(by_alias=True)), metadata.smartnoise_sql(),
                           privacy=privacy(payload))
    try:
        epsilon, delta = reader.get_privacy_cost(payload.query_str)
        rho = zcdp_rho(reader, payload.query_str)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error obtaining cost: {e}") from None
    return Cost(epsilon, delta, rho=rho)


def run(payload: SmartnoiseSQLPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """The query's result as `DataFrame.to_dict(orient="tight")`, as Lomas returns it."""
    reader = _reader(metadata, frame, payload)
    try:
        rows = reader.execute(payload.query_str, postprocess=payload.postprocess)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error executing query:{e}") from None
    spent = Cost(*reader.odometer.spent)
    if spent.epsilon > charge.epsilon * (1 + 1e-9) or spent.delta > charge.delta * (1 + 1e-9):
        raise ExternalLibraryError(LIBRARY, "the query spent more than its estimated cost; nothing was released")
    if payload.postprocess:
        rows = list(rows)
        columns, data = rows[0], rows[1:]
    else:
        first = next(iter(rows), None)
        data = [] if first is None else [list(first)]
        columns = [f"res_{i}" for i in range(len(data[0]) if data else 0)]
    result = pd.DataFrame(data, columns=columns)
    eps, delta = payload.epsilon, payload.delta
    if result.empty:
        raise ExternalLibraryError(
            LIBRARY,
            f"SQL Reader generated empty results. Epsilon: {eps} and Delta: {delta} are too small to generate output.",
        )
    if result.select_dtypes("number").isnull().to_numpy().any():
        raise ExternalLibraryError(
            LIBRARY,
            f"SQL Reader generated NAN results. Epsilon: {eps} and Delta: {delta} are too small "
            "to generate output. Nothing was released and the query is not retried."
        )
    return result.to_dict(orient="tight")
