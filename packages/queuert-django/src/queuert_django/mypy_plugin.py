"""The mypy plugin for projects that start chains with :mod:`queuert_django`: queuert's
own plugin (see :mod:`queuert.mypy_plugin`) plus the module-level
``enqueue_job_chain(s)`` of this package, so a wrong input names the expected type.
Enable it instead of queuert's::

    [tool.mypy]
    plugins = ["queuert_django.mypy_plugin"]
"""

from __future__ import annotations

from mypy.plugin import Plugin

from queuert.mypy_plugin import QueuertPlugin


class QueuertDjangoPlugin(QueuertPlugin):
    function_bindings = {
        "queuert_django.calls.enqueue_job_chain": ("chain", "InT"),
        "queuert_django.calls.enqueue_job_chains": ("chain", "InT"),
    }


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return QueuertDjangoPlugin
