"""The Dioptra REST API v0 (`/api/v0`): decode the request, call one Dioptra operation, answer 200 with JSON.

Collection roots are served with and without their trailing slash, as the stock client uses the slash form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dpkube.api.auth import Admin, Caller
from dpkube.api.services.dioptra import Dioptra
from dpkube.api.services.dioptra.forms import Form, FormError, parse_form
from dpkube.api.services.dioptra.messages import invalid_job_form, invalid_plugin_form
from dpkube.models.cost import Cost

router = APIRouter(prefix="/api/v0", tags=["Dioptra v0"])


def dioptra(request: Request) -> Dioptra:
    return request.app.state.dioptra


Service = Annotated[Dioptra, Depends(dioptra)]


class Registration(BaseModel):
    """An experiment or queue registration: only the name, unknown keys refused (Dioptra's schema errors)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=253)


def both(method: Callable[..., Any], path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a collection route as `path/` (documented) and `path` (served directly, no redirect)."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        method(path, include_in_schema=False)(endpoint)
        return method(f"{path}/")(endpoint)

    return register


async def _form(request: Request, refusal: Callable[[str], Exception]) -> Form:
    try:
        return parse_form(request.headers.get("content-type", ""), await request.body())
    except FormError as exc:
        raise refusal(str(exc)) from None


@both(router.get, "/experiment")
async def list_experiments(caller: Caller, service: Service) -> list[dict[str, Any]]:
    """Every registered experiment."""
    return [service.experiments.wire(e) for e in await service.experiments.all()]


@both(router.post, "/experiment")
async def register_experiment(body: Registration, caller: Caller, service: Service) -> dict[str, Any]:
    """A new experiment; its name is slugified."""
    return await service.experiments.register(body.name)


@router.get("/experiment/{experiment_id:int}")
async def get_experiment_by_id(experiment_id: int, caller: Caller, service: Service) -> dict[str, Any]:
    return service.experiments.wire(await service.experiments.by_id(experiment_id))


@router.get("/experiment/name/{name}")
async def get_experiment_by_name(name: str, caller: Caller, service: Service) -> dict[str, Any]:
    """The name in the path is slugified first, as Dioptra does."""
    return service.experiments.wire(await service.experiments.by_name(name))


class BudgetCap(BaseModel):
    """An experiment's cap per user and dataset; unknown keys refused."""

    model_config = ConfigDict(extra="forbid")

    epsilon: float = Field(ge=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)


@router.get("/experiment/{experiment_id:int}/budget")
async def get_experiment_budget_by_id(experiment_id: int, caller: Caller, service: Service) -> dict[str, Any]:
    """The experiment's cap and its spend per user and dataset (the caller's own rows; every row for an admin)."""
    return await service.budgets.view(caller, await service.experiments.by_id(experiment_id))


@router.get("/experiment/name/{name}/budget")
async def get_experiment_budget_by_name(name: str, caller: Caller, service: Service) -> dict[str, Any]:
    return await service.budgets.view(caller, await service.experiments.by_name(name))


@router.put("/experiment/{experiment_id:int}/budget")
async def set_experiment_budget(experiment_id: int, body: BudgetCap, admin: Admin, service: Service) -> dict[str, Any]:
    """Cap what the experiment's queries spend per user and dataset (admins only); from the next query admitted."""
    experiment = await service.experiments.by_id(experiment_id)
    return await service.budgets.set_cap(admin, experiment, Cost(body.epsilon, body.delta))


@router.delete("/experiment/{experiment_id:int}/budget")
async def remove_experiment_budget(experiment_id: int, admin: Admin, service: Service) -> dict[str, Any]:
    """Remove the cap (admins only): the users' grants alone bound the experiment's next queries."""
    return await service.budgets.set_cap(admin, await service.experiments.by_id(experiment_id), None)


@both(router.get, "/queue")
async def list_queues(caller: Caller, service: Service) -> list[dict[str, Any]]:
    """Unlocked queues only."""
    return await service.queues.unlocked()


@both(router.post, "/queue")
async def register_queue(body: Registration, admin: Admin, service: Service) -> dict[str, Any]:
    """A new queue (admins only: a queue decides where and how queries run)."""
    return await service.queues.register(body.name)


@router.get("/queue/{queue_id:int}")
async def get_queue_by_id(queue_id: int, caller: Caller, service: Service) -> dict[str, Any]:
    return service.queues.wire(await service.queues.by_id(queue_id))


@router.get("/queue/name/{name}")
async def get_queue_by_name(name: str, caller: Caller, service: Service) -> dict[str, Any]:
    """Exact name; locked queues too."""
    return service.queues.wire(await service.queues.by_name(name))


@router.put("/queue/name/{name}/lock")
async def lock_queue(name: str, admin: Admin, service: Service) -> dict[str, Any]:
    """New jobs are refused (403); queued ones wait in the operator until unlocked."""
    return await service.queues.set_locked(name, True)


@router.delete("/queue/name/{name}/lock")
async def unlock_queue(name: str, admin: Admin, service: Service) -> dict[str, Any]:
    return await service.queues.set_locked(name, False)


@both(router.get, "/job")
async def list_jobs(caller: Caller, service: Service) -> list[dict[str, Any]]:
    """The caller's jobs; every job for an admin."""
    return await service.jobs.all(caller)


@both(router.post, "/job")
async def submit_job(request: Request, caller: Caller, service: Service) -> dict[str, Any]:
    """A workflow entry point as a DPQuery in the caller's name (multipart form, file part `workflow`)."""
    return await service.jobs.submit(caller, await _form(request, invalid_job_form))


@router.get("/job/{job_id}")
async def get_job_by_id(job_id: str, caller: Caller, service: Service) -> dict[str, Any]:
    """One read by name; another user's job is 404, as an unknown id is."""
    return await service.jobs.get(caller, job_id)


@both(router.get, "/taskPlugin")
async def list_all_task_plugins(caller: Caller, service: Service) -> list[dict[str, Any]]:
    """Builtins first, then custom packages."""
    return await service.plugins.all()


@both(router.post, "/taskPlugin")
async def upload_custom_plugin_package(request: Request, admin: Admin, service: Service) -> dict[str, Any]:
    """A custom package (admins only: its code would run next to private data)."""
    return await service.plugins.upload(admin, await _form(request, invalid_plugin_form))


@both(router.get, "/taskPlugin/dioptra_builtins")
async def list_builtin_task_plugins(caller: Caller, service: Service) -> list[dict[str, Any]]:
    return service.plugins.builtins()


@router.get("/taskPlugin/dioptra_builtins/{name}")
async def get_builtin_task_plugin(name: str, caller: Caller, service: Service) -> dict[str, Any]:
    return service.plugins.builtin(name)


@both(router.get, "/taskPlugin/dioptra_custom")
async def list_custom_task_plugins(caller: Caller, service: Service) -> list[dict[str, Any]]:
    return await service.plugins.custom()


@router.get("/taskPlugin/dioptra_custom/{name}")
async def get_custom_task_plugin(name: str, caller: Caller, service: Service) -> dict[str, Any]:
    return await service.plugins.get_custom(name)


@router.delete("/taskPlugin/dioptra_custom/{name}")
async def delete_custom_task_plugin(name: str, admin: Admin, service: Service) -> dict[str, Any]:
    """Success even when absent; `taskPluginName` lists what was deleted."""
    return await service.plugins.delete(name)
