"""Every route of the Lomas 0.3 server: decode the body, call one Lomas operation, encode its answer.

The twelve library routes are generated from one table (library x private/dummy/cost), each with
its own strict body model and the seed's example in the OpenAPI document.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse

from dpkube.api.auth import USER_HEADER, Caller
from dpkube.api.services.lomas import Lomas
from dpkube.api.wire import COST_BODIES, DUMMY_BODIES, QUERY_BODIES, GetDbData, GetDummyDataset, WireModel
from dpkube.models import examples
from dpkube.models.dpquery import Mode
from dpkube.models.payloads import Library
from dpkube.models.progress import QueryProgress

router = APIRouter()


def lomas(request: Request) -> Lomas:
    return request.app.state.lomas


Service = Annotated[Lomas, Depends(lomas)]


def _example(value: dict[str, Any]) -> dict[str, Any]:
    return {"PENGUIN": {"summary": "The Lomas seed example on PENGUIN", "value": value}}


DbData = Annotated[GetDbData, Body(openapi_examples=_example(examples.GET_DB_DATA))]


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/state", status_code=307)


@router.get("/state")
async def state(request: Request) -> dict[str, Any]:
    """The server's state, as Lomas reports it (no authentication, like Lomas)."""
    return {
        "requested_by": request.headers.get(USER_HEADER),
        "state": {"state": ["LIVE"], "message": ["Server live: queries are DPQuery objects."], "LIVE": True},
    }


@router.post("/get_dataset_metadata")
async def get_dataset_metadata(body: DbData, caller: Caller, service: Service) -> dict[str, Any]:
    """The dataset's metadata (Lomas format, defaults filled in)."""
    return await service.dataset_metadata(caller.user, body.dataset_name)


@router.post("/get_dummy_dataset")
async def get_dummy_dataset(
    body: Annotated[GetDummyDataset, Body(openapi_examples=_example(examples.GET_DUMMY_DATASET))],
    caller: Caller, service: Service,
) -> dict[str, Any]:
    """Random rows that follow the metadata (never the real data)."""
    return await service.dummy_dataset(caller.user, body.dataset_name, body)


@router.post("/get_initial_budget")
async def get_initial_budget(body: DbData, caller: Caller, service: Service) -> dict[str, float]:
    """The caller's initial budget on the dataset."""
    return await service.initial_budget(caller.user, body.dataset_name)


@router.post("/get_total_spent_budget")
async def get_total_spent_budget(body: DbData, caller: Caller, service: Service) -> dict[str, float]:
    """What the caller has spent on the dataset."""
    return await service.total_spent_budget(caller.user, body.dataset_name)


@router.post("/get_remaining_budget")
async def get_remaining_budget(body: DbData, caller: Caller, service: Service) -> dict[str, float]:
    """Initial minus spent, for the caller on the dataset."""
    return await service.remaining_budget(caller.user, body.dataset_name)


@router.post("/get_previous_queries")
async def get_previous_queries(body: DbData, caller: Caller, service: Service) -> dict[str, Any]:
    """The caller's successful private queries on the dataset, oldest first."""
    return await service.previous_queries(caller.user, body.dataset_name)


Operation = Callable[[Lomas, str, Library, WireModel], Awaitable[dict[str, Any]]]
QUERY_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RESPOND_ASYNC = "respond-async"
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": QueryProgress, "description": "Still running (`Prefer: respond-async`): poll the `Location`"}}


def respond_async(request: Request) -> bool:
    """The caller asked not to wait (RFC 7240): answer 202 at once, with where to follow the query."""
    preferences = request.headers.get("prefer", "")
    return any(p.strip().split("=", 1)[0].strip().lower() == RESPOND_ASYNC for p in preferences.split(","))


def progress_response(progress: QueryProgress, *, applied: bool = False) -> JSONResponse:
    """202 with the query's progress and its `Location`, polled until it answers 200 (or the query's error)."""
    headers = {"Location": f"/queries/{progress.name}", "Retry-After": "1"}
    if applied:
        headers["Preference-Applied"] = RESPOND_ASYNC
    return JSONResponse(progress.model_dump(mode="json"), status_code=202, headers=headers)


@router.get("/queries/{name}", response_model=dict[str, Any],
            responses={**ACCEPTED, 404: {"description": "No query of yours by that name"}})
async def query_progress(name: Annotated[str, Path(max_length=253, pattern=QUERY_NAME)], caller: Caller,
                         service: Service) -> Any:
    """A query you submitted: 202 and its phase, queue position and elapsed time while it runs; once it has
    ended, what its route answers (its result, or its error)."""
    followed = await service.query_progress(caller.user, name)
    return progress_response(followed) if isinstance(followed, QueryProgress) else followed


def _add(path: str, library: Library, model: type[WireModel], example: dict[str, Any], operation: Operation,
         summary: str, mode: Mode | None = None) -> None:
    """One library route: `model` validates the body, `operation` answers it; a query route (`mode`) also
    answers 202 at once to `Prefer: respond-async`."""

    async def endpoint(
        body: Annotated[model, Body(openapi_examples=_example(example))],  # type: ignore[valid-type]
        caller: Caller, service: Service, request: Request,
    ) -> Any:
        if mode is not None and respond_async(request):
            return progress_response(await service.submit(caller.user, library, mode, body), applied=True)
        return await operation(service, caller.user, library, body)

    endpoint.__name__ = path.strip("/")
    router.add_api_route(path, endpoint, methods=["POST"], summary=summary, name=path.strip("/"),
                         response_model=dict[str, Any], responses=ACCEPTED if mode is not None else None)


for _library in Library:
    _name = _library.lomas_name
    _add(f"/{_name}_query", _library, QUERY_BODIES[_library], examples.QUERIES[_library], Lomas.private_query,
         f"{_name}: run on the private data, charged to your budget", Mode.QUERY)
    _add(f"/dummy_{_name}_query", _library, DUMMY_BODIES[_library],
         {**examples.QUERIES[_library], **examples.DUMMY}, Lomas.dummy_query,
         f"{_name}: run on dummy data, free", Mode.DUMMY)
    _add(f"/estimate_{_name}_cost", _library, COST_BODIES[_library], examples.COSTS[_library],
         Lomas.estimate_cost, f"{_name}: the cost a query would be charged")
