"""The web dashboard (`/ui`): a data scientist's budgets, spend, queries and jobs; an admin's grants, queues,
experiments and Events. Pages are read with the API's identities (a token kept in a cookie, or the trusted
header where that mode is on); forms are checked for their CSRF token and origin before anything is done."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from dpkube.api.auth import Authenticator, PageAdmin, Viewer
from dpkube.api.errors import UI_LOGIN, UI_PREFIX
from dpkube.api.routes.lomas import QUERY_NAME, lomas
from dpkube.api.services.dashboard import Dashboard
from dpkube.api.services.lomas import Lomas
from dpkube.api.ui.forms import CSRF_FIELD, checked_form, csrf_token, keep_csrf, sign_in, sign_out
from dpkube.api.ui.pages import render
from dpkube.models.progress import QueryProgress

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)


def dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard


Service = Annotated[Dashboard, Depends(dashboard)]
LomasService = Annotated[Lomas, Depends(lomas)]
QueueName = Annotated[str, Path(min_length=1, max_length=253)]


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page whose forms carry this browser's CSRF token."""
    token = csrf_token(request)
    response = render(template, status_code, csrf=token, csrf_field=CSRF_FIELD, prefix=UI_PREFIX, **context)
    keep_csrf(request, response, token)
    return response


def back_to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("")
async def home(request: Request, viewer: Viewer, service: Service) -> Response:
    """The caller's budgets, spend over time, queries and Dioptra jobs."""
    return page(request, "dashboard.html", viewer=viewer, view=await service.user_view(viewer.user),
                now=time.time())


@router.get("/login")
async def login_form(request: Request) -> Response:
    return page(request, "login.html", viewer=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token as the API would, then keep it in the session cookie."""
    fields = await checked_form(request)
    authenticator: Authenticator = request.app.state.authenticator
    await authenticator.check_token(fields.get("token", "").strip())
    response = back_to(UI_PREFIX)
    sign_in(request, response, fields["token"].strip())
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    response = back_to(UI_LOGIN)
    sign_out(response)
    return response


@router.get("/queries/{name}")
async def query_result(name: Annotated[str, Path(max_length=253, pattern=QUERY_NAME)], viewer: Viewer,
                       service: LomasService) -> Any:
    """What `GET /queries/<name>` answers, for the page's own link: the caller's query only."""
    followed = await service.query_progress(viewer.user, name)
    return followed.model_dump(mode="json") if isinstance(followed, QueryProgress) else followed


@router.get("/admin")
async def admin(request: Request, viewer: PageAdmin, service: Service) -> Response:
    """Every grant, queue, experiment, and the latest Events."""
    return page(request, "admin.html", viewer=viewer, view=await service.admin_view())


@router.post("/admin/queues/{name}/lock")
async def lock(request: Request, name: QueueName, viewer: PageAdmin, service: Service) -> Response:
    await checked_form(request)
    await service.set_locked(name, True)
    return back_to(f"{UI_PREFIX}/admin")


@router.post("/admin/queues/{name}/unlock")
async def unlock(request: Request, name: QueueName, viewer: PageAdmin, service: Service) -> Response:
    await checked_form(request)
    await service.set_locked(name, False)
    return back_to(f"{UI_PREFIX}/admin")
