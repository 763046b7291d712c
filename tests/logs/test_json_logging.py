"""queuert.logging.configure_json_logging: one JSON object per line, with the job's
fields on records about a job and the current span's ids when tracing."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import queuert
from queuert import ChainFailedError, ValidationError
from queuert.logging import configure_json_logging
from tests.otel.chains import CHAINS, FAILING, Step, register


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_json_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_records_about_a_job_carry_its_fields(json_lines: io.StringIO) -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    await app.migrate()
    worker = app.worker(poll_interval=0.02, worker_id="w-json")
    register(worker)
    async with worker:
        handle = await app.enqueue_job_chain(None, FAILING, Step(1))
        with contextlib.suppress(ChainFailedError):
            await app.wait_for_chain(handle, timeout=10, poll_interval=0.02)
    lines = records(json_lines)
    retry = next(r for r in lines if "retry in" in r["message"])
    assert retry["level"] == "WARNING"
    assert retry["logger"] == "queuert.worker"
    assert retry["time"].endswith("+00:00")
    assert (retry["job_id"], retry["chain_id"], retry["queue"], retry["attempt"]) == (
        handle.id,
        handle.id,
        FAILING.name,
        1,
    )
    assert retry["worker_id"] == "w-json"
    assert any(r["message"].startswith("worker w-json started") for r in lines)


def test_exceptions_extras_and_the_current_span_are_included(json_lines: io.StringIO) -> None:
    log = logging.getLogger("tests.app")
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("work") as span:
        try:
            raise KeyError("missing")
        except KeyError:
            log.exception("it broke", extra={"order": 7, "thing": object()})
    (line,) = records(json_lines)
    assert line["message"] == "it broke"
    assert line["order"] == 7
    assert line["thing"].startswith("<object object")
    assert "KeyError: 'missing'" in line["exception"]
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_configuring_again_replaces_the_handler(json_lines: io.StringIO) -> None:
    other = io.StringIO()
    handler = configure_json_logging(logging.INFO, stream=other)
    try:
        logging.getLogger("tests.app").info("once")
    finally:
        logging.getLogger().removeHandler(handler)
    assert [r["message"] for r in records(other)] == ["once"]
    assert json_lines.getvalue() == ""


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="LOUD"):
        configure_json_logging("LOUD")
    with pytest.raises(ValidationError, match="level"):
        configure_json_logging(1.5)  # type: ignore[arg-type]
