"""queuert_dashboard: a server-rendered web dashboard over a queuert application.

The public API is what this module exports.
"""

from queuert_dashboard.app import create_app
from queuert_dashboard.auth import Auth, basic_auth_from_env
from queuert_dashboard.serve import serve

__all__ = ["Auth", "basic_auth_from_env", "create_app", "serve"]
