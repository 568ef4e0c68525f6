"""The four library payloads of a DP query: what a user asks each DP library to compute.

Field names follow the Lomas 0.3 wire (snake_case in Python and on the REST API, camelCase in the
DPQuery manifest). Sizes are bounded here because a payload is untrusted code from a user; the
engine refuses what a schema cannot express (allowlisted constructors, one table, ...).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from dpkube.models.base import KubeModel

MAX_SQL_CHARS = 10_000
MAX_SQL_NESTING = 32
"""Deepest nesting of parentheses in a SQL query: smartnoise-sql parses recursively, and a thousand
nested parentheses take it seconds to refuse (about 2 ms per level)."""
MAX_SQL_TOKENS = 1_000
"""Most lexical tokens a query may hold (about 0.1 s of parsing at the limit)."""
MAX_JSON_CHARS = 200_000
MAX_COLUMNS = 512
MAX_SAMPLES = 100_000

PositiveEpsilon = Annotated[float, Field(gt=0, le=1_000)]
Delta = Annotated[float, Field(ge=0, lt=1)]
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]


_SQL_QUOTED = re.compile(
    r"'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)|\[[^\]]*(?:\]|\Z)|--[^\n]*|/\*.*?(?:\*/|\Z)", re.DOTALL
)
"""Literals, quoted identifiers and comments; an unclosed one runs to the end (no match can fail and backtrack)."""
_SQL_TOKEN = re.compile(r"\w+|[^\w\s]")


def shallow_sql(query: str) -> str:
    """`query`, unless its parentheses nest deeper than MAX_SQL_NESTING or it holds more than MAX_SQL_TOKENS
    tokens: a linear scan that runs before any parser (literals and comments are blanked first)."""
    bare = _SQL_QUOTED.sub("''", query)
    depth = deepest = 0
    for char in bare:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_SQL_NESTING:
        raise ValueError(f"parentheses nest deeper than {MAX_SQL_NESTING} levels")
    if sum(1 for _ in _SQL_TOKEN.finditer(bare)) > MAX_SQL_TOKENS:
        raise ValueError(f"more than {MAX_SQL_TOKENS} tokens")
    return query


class Library(StrEnum):
    """The DP libraries a query can use."""

    SMARTNOISE_SQL = "smartnoise-sql"
    OPENDP = "opendp"
    DIFFPRIVLIB = "diffprivlib"
    SMARTNOISE_SYNTH = "smartnoise-synth"

    @property
    def lomas_name(self) -> str:
        """The name Lomas uses in routes and archives (`smartnoise_sql`, ...)."""
        return self.value.replace("-", "_")


CORE_LIBRARIES = (Library.SMARTNOISE_SQL, Library.OPENDP, Library.DIFFPRIVLIB)
"""Every library but synthetic data: what the core image (no torch) runs, and what the default Queue's warm
pods import (warming synthetic data imports torch, which a warm runner then holds)."""


class SmartnoiseSQLPayload(KubeModel):
    """A SQL aggregate over the table `df`, answered by smartnoise-sql."""

    query_str: Annotated[str, Field(min_length=1, max_length=MAX_SQL_CHARS), AfterValidator(shallow_sql)]
    """The SQL query; it may read only the table `df` (e.g. `SELECT COUNT(*) AS NB_ROW FROM df`)."""
    epsilon: PositiveEpsilon
    """Epsilon given to each mechanism; the query's real cost is the library's own accounting."""
    delta: Annotated[float, Field(gt=0, lt=1)]
    """Delta given to each mechanism (required even for Laplace-only queries, as in Lomas)."""
    mechanisms: dict[str, str] = Field(default_factory=dict, max_length=8)
    """Mechanism overrides by statistic: keys count, sum_int, sum_large_int, sum_float, threshold."""
    postprocess: bool = True
    """Apply smartnoise-sql's post-processing (column names, clamping); false returns raw rows."""


class OpenDPPayload(KubeModel):
    """An OpenDP measurement serialised as a JSON AST (the Lomas `opendp_json`)."""

    opendp_json: str = Field(min_length=2, max_length=MAX_JSON_CHARS)
    """The pipeline: `{"version": ..., "ast": ...}` built only from allowlisted constructors."""
    fixed_delta: Delta | None = None
    """Delta at which a smoothed or zCDP measurement's epsilon is read off its privacy curve."""


class DiffPrivLibPayload(KubeModel):
    """A diffprivlib pipeline trained on a split of the dataset (the Lomas `diffprivlib_json`)."""

    diffprivlib_json: str = Field(min_length=2, max_length=MAX_JSON_CHARS)
    """The serialised pipeline: diffprivlib estimators and transformers only, privacy parameters set."""
    feature_columns: list[ColumnName] = Field(min_length=1, max_length=MAX_COLUMNS)
    """Columns used as features."""
    target_columns: list[ColumnName] | None = Field(default=None, max_length=MAX_COLUMNS)
    """Columns used as targets; none for unsupervised models."""
    test_size: float = Field(default=0.2, gt=0, lt=1)
    """Fraction of rows held out for the score."""
    test_train_split_seed: int = 1
    """Seed of the train/test split."""
    imputer_strategy: str = Field(default="drop", max_length=32)
    """How missing values are handled: drop, mean, median or most_frequent."""


class SynthName(StrEnum):
    """Synthesizers of smartnoise-synth."""

    AIM = "aim"
    MWEM = "mwem"
    MST = "mst"
    PACSYNTH = "pacsynth"
    DPCTGAN = "dpctgan"
    PATECTGAN = "patectgan"
    PATEGAN = "pategan"
    DPGAN = "dpgan"


class SmartnoiseSynthPayload(KubeModel):
    """A synthetic-data request answered by smartnoise-synth: samples, or the fitted model."""

    synth_name: SynthName
    """The synthesizer."""
    epsilon: PositiveEpsilon
    """Epsilon the synthesizer may spend; it is never allowed to spend more."""
    delta: Delta | None = None
    """Delta the synthesizer may spend (mwem takes none)."""
    select_cols: list[ColumnName] = Field(default_factory=list, max_length=MAX_COLUMNS)
    """Columns to synthesise; empty means all."""
    synth_params: dict[str, Any] = Field(default_factory=dict, max_length=32)
    """Synthesizer parameters (epochs, batch_size, ...), bounded by the engine."""
    nullable: bool = False
    """Whether the synthesizer models missing values."""
    constraints: str = Field(default="", max_length=MAX_JSON_CHARS)
    """Serialised per-column transformers overriding the defaults (Lomas format); empty for none."""
    return_model: bool = False
    """Return the fitted synthesizer instead of samples."""
    condition: Annotated[str, Field(max_length=1_000), AfterValidator(shallow_sql)] = ""
    """A condition on the samples (e.g. `bill_length_mm < 40`); empty for none."""
    nb_samples: int = Field(default=200, gt=0, le=MAX_SAMPLES)
    """How many synthetic rows to return."""


PAYLOAD_TYPES: dict[Library, type[KubeModel]] = {
    Library.SMARTNOISE_SQL: SmartnoiseSQLPayload,
    Library.OPENDP: OpenDPPayload,
    Library.DIFFPRIVLIB: DiffPrivLibPayload,
    Library.SMARTNOISE_SYNTH: SmartnoiseSynthPayload,
}

Payload = SmartnoiseSQLPayload | OpenDPPayload | DiffPrivLibPayload | SmartnoiseSynthPayload
