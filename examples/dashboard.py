"""The dashboard mounted in an application's own ASGI app, as
``docs/dashboard.md`` shows it."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

import queuert


def with_dashboard(app: queuert.Queuert[Any]) -> Starlette:
    """An ASGI application serving the dashboard of ``app`` under ``/queuert``,
    its actions allowed to the HTTP basic credentials of the environment
    (``QUEUERT_DASHBOARD_USER`` and ``QUEUERT_DASHBOARD_PASSWORD``)."""
    # --8<-- [start:mount]
    from starlette.routing import Mount

    from queuert_dashboard import basic_auth_from_env, create_app

    dashboard = create_app(app, auth=basic_auth_from_env())  # auth=None: read-only
    main = Starlette(routes=[Mount("/queuert", app=dashboard)])  # or FastAPI's main.mount
    # --8<-- [end:mount]
    return main
