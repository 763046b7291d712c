"""An image pipeline with a human approval step: the worker minifies, the chain
waits on an ``external`` queue, and an HTTP-handler-like function completes that
step inside the application's own transaction, exactly once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import ChainEndedError, Job, JobContext, JobNotFoundError, JobStatus, ValidationError
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import caller_transaction, make_worker, open_app, wait_until


@dataclass
class ImageInput:
    image_id: int


@dataclass
class ApprovalInput:
    image_id: int
    digest: str


@dataclass
class DistributeInput:
    image_id: int
    approved_by: str


@dataclass
class Done:
    published: bool


image_chain = queuert.chain("e2e-approved-image", input=ImageInput, output=Done)
approval = image_chain.queue("approval", input=ApprovalInput, external=True)
distribute = image_chain.queue("distribute", input=DistributeInput)


@dataclass
class Request:
    """What a web framework would hand its view: the parsed JSON body."""

    json: dict[str, Any]


@dataclass
class Response:
    status: int
    body: dict[str, Any]


def approval_endpoint(app: queuert.Queuert[Any], backend: Backend) -> Any:
    """``POST /approvals``: ``{"job_id": ..., "reviewer": ..., "approved": bool}``."""

    async def handle(request: Request) -> Response:
        job_id = request.json["job_id"]
        reviewer = request.json["reviewer"]
        try:
            async with app.with_notify(), caller_transaction(backend) as tx:
                await backend.app_write(tx, f"review:{job_id}:{reviewer}")
                job = await app.get_job(job_id, tx=tx)
                if job is None:
                    raise JobNotFoundError(job_id)
                image_id = job.input_value()["image_id"]
                if request.json["approved"]:
                    await app.complete_job(
                        tx, job_id, continue_with=(distribute, DistributeInput(image_id, reviewer))
                    )
                else:
                    await app.complete_job(tx, job_id, output=Done(published=False))
        except JobNotFoundError:
            return Response(404, {"error": "no such approval"})
        except ChainEndedError:
            return Response(409, {"error": "already decided"})
        return Response(200, {"ok": True})

    return handle


async def test_an_approval_step_is_completed_by_an_http_handler(backend: Backend) -> None:
    published: list[tuple[int, str]] = []
    async with open_app(backend, [image_chain]) as app:
        worker = make_worker(app)

        @worker.handler(image_chain)
        async def minify(job: Job[ImageInput], ctx: JobContext[Any, Done]) -> queuert.Continuation:
            digest = f"sha-{job.input.image_id}"
            return await ctx.continue_with(approval, ApprovalInput(job.input.image_id, digest))

        @worker.handler(distribute)
        async def publish(job: Job[DistributeInput], ctx: JobContext[Any, Done]) -> Done:
            published.append((job.input.image_id, job.input.approved_by))
            return Done(published=True)

        endpoint = approval_endpoint(app, backend)
        async with worker:
            approved = await app.enqueue_job_chain(None, image_chain, ImageInput(1))
            rejected = await app.enqueue_job_chain(None, image_chain, ImageInput(2))

            async def waiting_for_review(chain_id: str) -> str | None:
                chain = await app.get_chain(chain_id)
                if chain is not None and chain.last_queue == approval.name:
                    return chain.last_job_id
                return None

            first = await wait_until(lambda: waiting_for_review(approved.id), what="approval")
            second = await wait_until(lambda: waiting_for_review(rejected.id), what="approval")
            why = await app.explain(approved.id)
            assert why.reason == "external"

            body = {"job_id": first, "reviewer": "ada", "approved": True}
            responses = await asyncio.gather(
                endpoint(Request(body)), endpoint(Request({**body, "reviewer": "bob"}))
            )
            assert sorted(r.status for r in responses) == [200, 409]
            reviewer = "ada" if responses[0].status == 200 else "bob"
            assert await app.wait_for_chain(approved, timeout=5) == Done(published=True)

            no = {"job_id": second, "reviewer": "eve", "approved": False}
            assert (await endpoint(Request(no))).status == 200
            assert await app.wait_for_chain(rejected, timeout=5) == Done(published=False)
            missing = {"job_id": "no-such-job", "reviewer": "eve", "approved": True}
            assert (await endpoint(Request(missing))).status == 404

    assert published == [(1, reviewer)]
    # Only the winning review's write committed: each decision happened once.
    assert await backend.app_writes() == {
        f"review:{first}:{reviewer}": 1,
        f"review:{second}:eve": 1,
    }
    pending = await app.get_job(second)
    assert pending is not None and pending.status is JobStatus.COMPLETED


def test_no_worker_handles_an_external_queue() -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[image_chain])
    worker = app.worker()
    with pytest.raises(ValidationError, match="external"):
        worker.handler(approval)
