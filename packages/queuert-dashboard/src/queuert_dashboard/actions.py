"""The actions on a chain (retry, cancel, delete), through the application's API:
each needs ``auth``, is asked for on a confirmation page and runs only with that
page's CSRF token (see :mod:`queuert_dashboard.auth`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queuert import ChainRecord, JobNotFoundError, JobStateError, JobStatus, ValidationError
from queuert.validation import show
from queuert_dashboard.auth import CSRF_COOKIE, allowed, csrf_ok, new_csrf_token
from queuert_dashboard.rendering import Renderer

ACTIONS = ("retry", "cancel", "delete")
"""What can be done to a chain from its page."""

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


def available(chain: ChainRecord) -> list[str]:
    """The actions that make sense for ``chain`` as it is: retry once it failed or
    was cancelled, cancel until it ends, delete at any time."""
    found = []
    if chain.status in RETRYABLE:
        found.append("retry")
    if not chain.status.is_terminal:
        found.append("cancel")
    found.append("delete")
    return found


class Actions(Renderer):
    """The confirmation pages and the actions they post."""

    async def _refuse(self, request: Request) -> Response | None:
        """The answer to a request that may not act, or ``None`` when it may."""
        if self.auth is None:
            return self.error(
                request, "this dashboard is read-only: it was created without auth", 403
            )
        if not await allowed(self.auth, request):
            response = self.error(request, "not authorised", 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="queuert"'
            return response
        return None

    async def confirm(self, request: Request) -> Response:
        refused = await self._refuse(request)
        if refused is not None:
            return refused
        chain_id, action = request.path_params["chain_id"], request.path_params["action"]
        if action not in ACTIONS:
            return self.not_found(request, f"action {show(action)}")
        try:
            record = await self.app.get_chain(chain_id)
        except ValidationError as exc:
            return self.refused(request, exc)
        if record is None:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        token = new_csrf_token()
        response = self.render(
            request, "confirm.html", {"chain": record, "action": action, "token": token}
        )
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path=request.scope.get("root_path") or "/",
        )
        return response

    async def act(self, request: Request) -> Response:
        refused = await self._refuse(request)
        if refused is not None:
            return refused
        if not await csrf_ok(request):
            return self.error(
                request, "the form's token does not match: open the action's page again", 403
            )
        chain_id, action = request.path_params["chain_id"], request.path_params["action"]
        target = request.url_for("chain", chain_id=chain_id)
        try:
            if action == "retry":
                await self.app.retry_chain(chain_id)
            elif action == "cancel":
                await self.app.cancel_chain(chain_id)
            elif action == "delete":
                await self.app.delete_chains([chain_id])
                target = request.url_for("chains")
            else:
                return self.not_found(request, f"action {show(action)}")
        except JobNotFoundError:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        except JobStateError as exc:
            # The chain is not in a state the action applies to (it ended, or runs).
            return self.refused(request, exc, status_code=409)
        except ValidationError as exc:
            return self.refused(request, exc)
        return RedirectResponse(target, status_code=303)
