"""The Lomas 0.3 request bodies, derived from the payload models so the two can never drift apart.

Lomas requires every field its client always sends (its defaults are client-side), so each payload
field becomes required here, except the two Lomas itself declares optional with a null default.
Field names are snake_case only; unknown keys are ignored, as Lomas does.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from dpkube.models.dpquery import MAX_DUMMY_ROWS
from dpkube.models.payloads import PAYLOAD_TYPES, Library

OPTIONAL_FIELDS: dict[Library, frozenset[str]] = {
    Library.SMARTNOISE_SYNTH: frozenset({"delta"}),
    Library.OPENDP: frozenset({"fixed_delta"}),
}
"""Fields Lomas declares `X | None = None`: absent means null."""

QUERY_ONLY_FIELDS: dict[Library, frozenset[str]] = {
    Library.SMARTNOISE_SQL: frozenset({"postprocess"}),
    Library.SMARTNOISE_SYNTH: frozenset({"return_model", "condition", "nb_samples"}),
}
"""Fields of the query bodies that the cost-estimate bodies (Lomas' `*Request`) do not have."""


class WireModel(BaseModel):
    """A Lomas request body: snake_case names, extra keys ignored."""

    model_config = ConfigDict(extra="ignore")


class GetDbData(WireModel):
    """A request about one dataset."""

    dataset_name: str = Field(min_length=1, max_length=253)
    """Name of the dataset (e.g. PENGUIN)."""


class DummyFields(WireModel):
    """How the dummy dataset of a dummy route is generated."""

    dummy_nb_rows: int = Field(gt=0, le=MAX_DUMMY_ROWS)
    """Number of dummy rows (Lomas' client sends 100)."""
    dummy_seed: int = Field(ge=0)
    """Seed of the generator (Lomas' client sends 42); numpy refuses negative seeds."""


class GetDummyDataset(GetDbData, DummyFields):
    """A dummy dataset request."""


def _wire_field(info: FieldInfo, optional: bool) -> tuple[Any, Any]:
    """The payload field with its type, bounds and description, required unless Lomas says optional."""
    annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    default = None if optional else ...
    return annotation, Field(default, description=info.description)


def _body_model(library: Library, name: str, *, query: bool, dummy: bool) -> type[WireModel]:
    """dataset_name, the payload's fields, then the dummy fields: Lomas' order (422s list fields in it)."""
    skipped = frozenset() if query else QUERY_ONLY_FIELDS.get(library, frozenset())
    optional = OPTIONAL_FIELDS.get(library, frozenset())
    payload = PAYLOAD_TYPES[library]
    fields: dict[str, Any] = {"dataset_name": (str, GetDbData.model_fields["dataset_name"])}
    fields |= {
        field: _wire_field(info, field in optional)
        for field, info in payload.model_fields.items()
        if field not in skipped
    }
    if dummy:
        fields |= {field: (info.annotation, info) for field, info in DummyFields.model_fields.items()}
    model: type[WireModel] = create_model(name, __base__=WireModel, __doc__=payload.__doc__, **fields)
    return model


def _name(library: Library) -> str:
    return {"smartnoise-sql": "SmartnoiseSQL", "smartnoise-synth": "SmartnoiseSynth", "opendp": "OpenDP",
            "diffprivlib": "DiffPrivLib"}[library.value]


QUERY_BODIES: dict[Library, type[WireModel]] = {
    lib: _body_model(lib, f"{_name(lib)}Query", query=True, dummy=False) for lib in Library
}
"""Bodies of the private query routes (`/smartnoise_sql_query`, ...)."""

DUMMY_BODIES: dict[Library, type[WireModel]] = {
    lib: _body_model(lib, f"{_name(lib)}DummyQuery", query=True, dummy=True) for lib in Library
}
"""Bodies of the dummy query routes: the query body and the dummy fields."""

COST_BODIES: dict[Library, type[WireModel]] = {
    lib: _body_model(lib, f"{_name(lib)}Request", query=False, dummy=False) for lib in Library
}
"""Bodies of the cost-estimate routes."""


def payload_of(library: Library, body: WireModel) -> dict[str, Any]:
    """The library payload a body carries (route-only fields dropped), as the payload model's fields."""
    names = PAYLOAD_TYPES[library].model_fields
    return {k: v for k, v in body.model_dump().items() if k in names}
