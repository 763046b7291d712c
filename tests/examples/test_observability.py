"""The observability setup of docs/observability.md works as shown."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import queuert.otel
from examples.first_chain import Signup, welcome
from examples.observability import instrumented_app, json_logs


async def test_the_instrumented_app_is_observed_and_starts_chains(tmp_path: Path) -> None:
    app = instrumented_app(str(tmp_path / "app.db"))
    try:
        assert isinstance(app.observer, queuert.otel.OpenTelemetryObserver)
        await app.migrate()
        handle = await app.enqueue_job_chain(None, welcome, Signup(user_id=1))
        chain = await app.get_chain(handle.id)
        assert chain is not None and chain.chain_name == "welcome"
    finally:
        await app.close()


def test_json_logs_write_one_object_per_record() -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = json_logs(stream)
    try:
        logging.getLogger("tests.observability").info("hello %s", "there")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["level"] == "INFO"
    assert record["logger"] == "tests.observability"
    assert record["message"] == "hello there"
