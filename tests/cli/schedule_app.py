"""The application the ``queuert schedules`` tests name with ``--app``: one schedule
every hour and one nightly cron schedule; the store comes from
``QUEUERT_STATE_URL``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import queuert


@dataclass
class Tick:
    n: int


ticks = queuert.chain("cli-ticks", input=Tick, output=None)
HOURLY = "cli-hourly"
NIGHTLY = "cli-nightly"


def declare(app: queuert.Queuert[Any]) -> None:
    app.schedule(HOURLY, ticks, every=timedelta(hours=1), input=Tick(0))
    app.schedule(NIGHTLY, ticks, cron="30 2 * * *", timezone="Europe/Paris", input=Tick(1))


async def make_app() -> queuert.Queuert[Any]:
    app = await queuert.Queuert.from_url(chains=[ticks], notify="none")
    declare(app)
    return app
