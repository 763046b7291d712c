"""The deployment files of the documentation start the worker the examples define
and give it time to stop as the worker documents."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import queuert

DEPLOY = Path(__file__).parents[2] / "examples" / "deploy"


def default_shutdown_timeout() -> float:
    default = inspect.signature(queuert.Queuert.worker).parameters["shutdown_timeout"].default
    assert isinstance(default, float)
    return default


def runs_a_worker_module(module: str) -> None:
    worker = importlib.import_module(module)
    assert inspect.iscoroutinefunction(worker.main)


def test_the_systemd_unit_stops_the_worker_with_sigterm_in_time() -> None:
    unit = (DEPLOY / "queuert-worker.service").read_text()
    command = re.search(r"^ExecStart=\S+ -m (\S+)$", unit, re.M)
    assert command is not None
    runs_a_worker_module(command.group(1))
    assert re.search(r"^KillSignal=SIGTERM$", unit, re.M)
    stop = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)
    assert stop is not None and int(stop.group(1)) > default_shutdown_timeout()


def test_the_kubernetes_deployment_gives_the_worker_time_to_stop() -> None:
    manifest = (DEPLOY / "worker-deployment.yaml").read_text()
    command = re.search(r'command: \["python", "-m", "([\w.]+)"\]', manifest)
    assert command is not None
    runs_a_worker_module(command.group(1))
    grace = re.search(r"terminationGracePeriodSeconds: (\d+)", manifest)
    assert grace is not None and int(grace.group(1)) > default_shutdown_timeout()
