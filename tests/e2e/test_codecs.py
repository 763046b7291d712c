"""Inputs and outputs of every supported kind (dataclasses, pydantic models,
msgspec structs, TypedDicts) survive a trip through the store and a real worker:
the handler gets instances of the declared types, the awaited chain its output
type, and the store plain JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NotRequired

import msgspec
import pydantic
import pytest
from typing_extensions import TypedDict

import queuert
from queuert import ChainDef, Continuation, Job, JobContext, QueueDef
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app

WHEN = datetime(2030, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
WHEN_JSON = "2030-05-17T08:30:15.123456Z"


# -- dataclasses -----------------------------------------------------------------------


@dataclass
class DcSize:
    width: int
    height: int


@dataclass
class DcIn:
    name: str
    when: datetime
    sizes: list[DcSize]
    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None


@dataclass
class DcOut:
    urls: list[str]
    ratio: float


# -- pydantic ------------------------------------------------------------------------------


class PdSize(pydantic.BaseModel):
    width: int
    height: int


class PdIn(pydantic.BaseModel):
    name: str
    when: datetime
    sizes: list[PdSize]
    tags: dict[str, str] = {}
    note: str | None = None


class PdOut(pydantic.BaseModel):
    urls: list[str]
    ratio: float


# -- msgspec -----------------------------------------------------------------------------------


class MsSize(msgspec.Struct):
    width: int
    height: int


class MsIn(msgspec.Struct):
    name: str
    when: datetime
    sizes: list[MsSize]
    tags: dict[str, str] = {}
    note: str | None = None


class MsOut(msgspec.Struct):
    urls: list[str]
    ratio: float


# -- TypedDicts -----------------------------------------------------------------------------------


class TdSize(TypedDict):
    width: int
    height: int


class TdIn(TypedDict):
    name: str
    when: datetime
    sizes: list[TdSize]
    tags: dict[str, str]
    note: NotRequired[str | None]


class TdOut(TypedDict):
    urls: list[str]
    ratio: float


@dataclass(frozen=True)
class Kind:
    """One way of declaring types: a chain whose entry step takes ``make_in`` values,
    continues with the same type on a second step, and ends with ``make_out``."""

    name: str
    chain: ChainDef[Any, Any]
    step: QueueDef[Any, Any]
    input_type: type
    output_type: type
    size_type: type
    sample: Any
    output: Any


def kind(name: str, input_type: Any, output_type: Any, size_type: Any, sample: Any) -> Kind:
    chain: ChainDef[Any, Any] = queuert.chain(
        f"e2e-codec-{name}", input=input_type, output=output_type
    )
    step = chain.queue("resize", input=input_type)
    output = output_type(urls=["/a.png", "/b.png"], ratio=0.5)
    return Kind(name, chain, step, input_type, output_type, size_type, sample, output)


KINDS = [
    kind(
        "dataclass",
        DcIn,
        DcOut,
        DcSize,
        DcIn("cat.png", WHEN, [DcSize(10, 20), DcSize(30, 40)], {"k": "v"}),
    ),
    kind(
        "pydantic",
        PdIn,
        PdOut,
        PdSize,
        PdIn(
            name="cat.png",
            when=WHEN,
            sizes=[PdSize(width=10, height=20), PdSize(width=30, height=40)],
            tags={"k": "v"},
        ),
    ),
    kind(
        "msgspec",
        MsIn,
        MsOut,
        MsSize,
        MsIn("cat.png", WHEN, [MsSize(10, 20), MsSize(30, 40)], {"k": "v"}),
    ),
    kind(
        "typeddict",
        TdIn,
        TdOut,
        TdSize,
        TdIn(
            name="cat.png",
            when=WHEN,
            sizes=[TdSize(width=10, height=20), TdSize(width=30, height=40)],
            tags={"k": "v"},
            note=None,
        ),
    ),
]

STORED_INPUT = {
    "name": "cat.png",
    "when": WHEN_JSON,
    "sizes": [{"width": 10, "height": 20}, {"width": 30, "height": 40}],
    "tags": {"k": "v"},
    "note": None,
}


def field_of(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)


@pytest.mark.parametrize("k", KINDS, ids=[k.name for k in KINDS])
async def test_inputs_and_outputs_round_trip(backend: Backend, k: Kind) -> None:
    async with open_app(backend, [k.chain]) as app:
        seen: list[Any] = []
        worker = make_worker(app)

        @worker.handler(k.chain)
        async def first(job: Job[Any], ctx: JobContext[Any, Any]) -> Any | Continuation:
            seen.append(job.input)
            return await ctx.continue_with(k.step, job.input)

        @worker.handler(k.step)
        async def second(job: Job[Any], ctx: JobContext[Any, Any]) -> Any:
            seen.append(job.input)
            return k.output

        async with worker:
            handle = await app.enqueue_job_chain(None, k.chain, k.sample)
            result = await app.wait_for_chain(handle, timeout=5.0)

        # The handlers got the declared types, equal to what was enqueued.
        assert len(seen) == 2
        for value in seen:
            if k.input_type is not TdIn:
                assert type(value) is k.input_type
                assert type(field_of(value, "sizes")[0]) is k.size_type
            else:
                assert type(value) is dict
            assert value == k.sample
            assert field_of(value, "when") == WHEN
            assert field_of(value, "when").tzinfo is not None

        if k.output_type is not TdOut:
            assert type(result) is k.output_type
        assert result == k.output

        # The store holds plain JSON that reads the same whatever the declaring type.
        chain = await app.get_chain(handle.id)
        assert chain is not None
        assert chain.input_value() == STORED_INPUT
        assert chain.output_value() == {"urls": ["/a.png", "/b.png"], "ratio": 0.5}
        jobs = (await app.list_jobs(chain_id=handle.id)).items
        assert [job.input_value()["sizes"] for job in jobs] == [STORED_INPUT["sizes"]] * 2


async def test_plain_types_round_trip(backend: Backend) -> None:
    numbers = queuert.chain("e2e-codec-plain", input=list[int], output=dict[str, int])
    async with open_app(backend, [numbers]) as app:
        worker = make_worker(app)

        @worker.handler(numbers)
        async def total(
            job: Job[list[int]], ctx: JobContext[Any, dict[str, int]]
        ) -> dict[str, int]:
            assert job.input == [1, 2, 3]
            return {"sum": sum(job.input)}

        async with worker:
            handle = await app.enqueue_job_chain(None, numbers, [1, 2, 3])
            assert await app.wait_for_chain(handle, timeout=5.0) == {"sum": 6}
