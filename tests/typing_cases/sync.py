"""Type-checked against mypy by tests/test_typing.py; lines marked with E must fail."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import queuert
from queuert.sync import SyncClient


@dataclass
class ImageInput:
    image_id: int


@dataclass
class OtherInput:
    name: str


@dataclass
class Done:
    done: bool


image_chain = queuert.chain("image", input=ImageInput, output=Done)


def start(client: SyncClient, conn: sqlite3.Connection) -> None:
    handle: queuert.ChainHandle[Done] = client.enqueue_job_chain(conn, image_chain, ImageInput(1))
    client.enqueue_job_chain(conn, image_chain, OtherInput("x"))  # E: wrong chain input `OtherInput` `ImageInput`
    client.enqueue_job_chains(conn, image_chain, [OtherInput("x")])  # E: `OtherInput` `ImageInput`
    wrong: queuert.ChainHandle[str] = client.enqueue_job_chain(conn, image_chain, ImageInput(2))  # E: chain output is Done
    del handle, wrong
