"""The API: upload an image (its row and its chain in one transaction), read its
status. ``uvicorn examples.fastapi_app.web:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import queuert
from examples.fastapi_app import settings
from examples.fastapi_app.chains import ImageInput, image_chain
from examples.fastapi_app.models import Image

MAX_IMAGES_PER_NAME = 3


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request. Leaving it without a commit (the endpoint raised)
    rolls back everything the request wrote, its chains included."""
    async with request.app.state.sessions() as s:
        yield s


def jobs(request: Request) -> queuert.Queuert[Any]:
    app: queuert.Queuert[Any] = request.app.state.jobs
    return app


Session = Annotated[AsyncSession, Depends(session)]
Jobs = Annotated[queuert.Queuert[Any], Depends(jobs)]

router = APIRouter()


# --8<-- [start:upload]
@router.post("/images", status_code=201)
async def upload(name: str, request: Request, session: Session, jobs: Jobs) -> dict[str, Any]:
    image = Image(name=name, data=await request.body())
    session.add(image)
    await session.flush()  # the row's id
    # The chain starts in the session's transaction: it exists exactly when the
    # session commits, and workers are woken after that commit.
    handle = await jobs.enqueue_job_chain(session, image_chain, ImageInput(image.id))
    image.chain_id = handle.id
    # A check after the chain started: raising here rolls back the row and the chain.
    uploads = await session.scalar(select(func.count()).where(Image.name == name))
    if uploads is not None and uploads > MAX_IMAGES_PER_NAME:
        raise HTTPException(409, f"{name!r} was uploaded {MAX_IMAGES_PER_NAME} times already")
    await session.commit()
    return {"image_id": image.id, "chain_id": handle.id}


# --8<-- [end:upload]


@router.get("/images/{image_id}")
async def status(image_id: int, session: Session, jobs: Jobs) -> dict[str, Any]:
    image = await session.get(Image, image_id)
    if image is None or image.chain_id is None:
        raise HTTPException(404, f"no image {image_id}")
    chain = await jobs.get_chain(image.chain_id, tx=session)
    assert chain is not None  # committed together with the row
    return {
        "image_id": image.id,
        "chain_id": chain.id,
        "status": chain.status.value,
        "step": chain.last_queue,
        "output": chain.output,
    }


def create_app(engine: AsyncEngine, jobs: queuert.Queuert[Any]) -> FastAPI:
    """The API over ``engine`` (the application's database) and ``jobs``."""
    api = FastAPI(title="images")
    api.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    api.state.jobs = jobs
    api.include_router(router)
    return api


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    engine, app = await settings.connect(settings.database_url())
    api.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    api.state.jobs = app
    try:
        yield
    finally:
        await app.close()
        await engine.dispose()


app = FastAPI(title="images", lifespan=lifespan)
app.include_router(router)
