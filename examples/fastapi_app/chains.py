"""The image chain: minify an uploaded image, then distribute it."""

from __future__ import annotations

from dataclasses import dataclass

import queuert


@dataclass
class ImageInput:
    image_id: int


@dataclass
class DistributeInput:
    image_id: int
    digest: str


@dataclass
class Distributed:
    url: str


image_chain = queuert.chain("fastapi-image", input=ImageInput, output=Distributed)
distribute = image_chain.queue("distribute", input=DistributeInput)

CHAINS = [image_chain]
