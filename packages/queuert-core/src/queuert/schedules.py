"""Recurring schedules: a chain started once per slot of a cron expression or a
fixed interval, however many workers run, with no leader.

``app.schedule(name, chain, cron="0 3 * * *", timezone="Europe/Paris")`` (or
``every=timedelta(...)``) declares a schedule; every worker of the app runs it.
Each slot's chain start is deduplicated by the database on (schedule name,
slot time): the slot is recorded in the same transaction as the chain's first
job, and a second start of the same slot writes nothing
(:meth:`~queuert.ports.state.StateAdapter.start_scheduled_chain`). Workers
compute slots from their own clock; a skewed clock may start a slot a little
early or late, never twice.

Cron expressions are those of `cronsim` (install ``queuert-core[cron]``),
evaluated in the schedule's time zone with its daylight-saving behaviour (that
of Debian's cron: a slot in a skipped hour runs once the clock has jumped, a
slot in a repeated hour runs once). Intervals are aligned on the Unix epoch in
UTC, so every worker computes the same slots.

Catch-up, when no slot was started for a while (every worker was down):
``"latest"`` (default) starts only the most recent missed slot, ``"all"`` every
missed slot (the most recent :data:`MAX_CATCH_UP` of them), ``"none"`` only a
slot that is less than :data:`ON_TIME` old. A schedule that never ran starts
with the first slot after its first worker started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queuert.definitions import ChainDef
from queuert.errors import ConfigurationError, ValidationError
from queuert.notifications import PendingNotifications
from queuert.records import ScheduleSlot
from queuert.validation import show

if TYPE_CHECKING:
    from queuert.client import Queuert

CatchUp = Literal["latest", "none", "all"]
CATCH_UPS: tuple[CatchUp, ...] = ("latest", "none", "all")

MAX_CATCH_UP = 100
"""With ``catch_up="all"``, at most this many missed slots (the most recent) start."""

ON_TIME = timedelta(seconds=5)
"""With ``catch_up="none"``, a slot older than this is missed, not started."""

MIN_EVERY = timedelta(seconds=1)
MAX_WAIT = 60.0
"""A worker re-reads its schedules at least this often (seconds)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

log = logging.getLogger("queuert.schedules")


class ScheduleError(ValidationError):
    """A schedule's declaration is invalid: bad name, expression, interval, time zone
    or catch-up policy."""


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as :meth:`~queuert.Queuert.list_schedules` shows it."""

    name: str
    chain: str
    cron: str | None
    every: timedelta | None
    timezone: str
    catch_up: CatchUp
    next_slot: datetime
    last_slot: datetime | None
    last_chain_id: str | None


class ScheduleDef:
    """A declared schedule; see :mod:`queuert.schedules`."""

    def __init__(
        self,
        name: str,
        chain: ChainDef[Any, Any],
        *,
        cron: str | None,
        every: timedelta | None,
        input: Any,
        timezone: str,
        catch_up: str,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 120:
            raise ScheduleError(f"schedule name must be 1-120 characters, got {show(name)}")
        if (cron is None) == (every is None):
            raise ScheduleError(f"schedule {name!r} takes exactly one of cron= or every=")
        if catch_up not in CATCH_UPS:
            raise ScheduleError(
                f"catch_up of schedule {name!r} must be one of {CATCH_UPS}, got {show(catch_up)}"
            )
        try:
            if not isinstance(timezone, str):
                raise TypeError
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, TypeError, ValueError):
            raise ScheduleError(
                f"timezone of schedule {name!r} is not a known time zone: {show(timezone)}"
            ) from None
        if every is not None and (
            not isinstance(every, timedelta) or every < MIN_EVERY or every.microseconds
        ):
            raise ScheduleError(
                f"every= of schedule {name!r} must be a timedelta of whole seconds, at "
                f"least {MIN_EVERY}, got {show(every)}"
            )
        if cron is not None:
            _check_cron(name, cron)
        if not callable(input):
            # A fixed input is checked once, here, rather than at every slot.
            chain.input_codec.encode(input)
        self.name = name
        self.chain = chain
        self.cron = cron
        self.every = every
        self.input = input
        self.timezone = timezone
        self.catch_up: CatchUp = catch_up

    def __repr__(self) -> str:
        return f"<schedule {self.name!r}>"

    # -- slots ------------------------------------------------------------------------

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after ``after`` (UTC)."""
        if self.every is not None:
            step = _us(self.every)
            return _EPOCH + timedelta(microseconds=(_us(after - _EPOCH) // step + 1) * step)
        from cronsim import CronSim

        start = after.astimezone(self.zone)
        for slot in CronSim(self._cron, start):
            if slot.astimezone(UTC) > after:
                return slot.astimezone(UTC)
        raise ScheduleError(f"schedule {self.name!r} has no slot after {after.isoformat()}")

    def slots_between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """The slots ``s`` with ``after < s <= until``, at most the ``limit`` latest, in
        time order (UTC)."""
        if until <= after:
            return []
        if self.every is not None:
            step = _us(self.every)
            first = _us(after - _EPOCH) // step + 1
            last = _us(until - _EPOCH) // step
            first = max(first, last - limit + 1)
            return [_EPOCH + timedelta(microseconds=k * step) for k in range(first, last + 1)]
        from cronsim import CronSim

        found: list[datetime] = []
        # Backwards from just after ``until``, so that a long gap costs only ``limit``
        # steps.
        for slot in CronSim(
            self._cron, (until + timedelta(seconds=1)).astimezone(self.zone), reverse=True
        ):
            at = slot.astimezone(UTC)
            if at > until:
                continue
            if at <= after or len(found) >= limit:
                break
            if not found or found[-1] != at:
                found.append(at)
        return found[::-1]

    @property
    def _cron(self) -> str:
        assert self.cron is not None
        return self.cron

    def input_for(self, slot: datetime) -> Any:
        """The chain input of ``slot``: ``input(slot)`` when ``input`` is callable."""
        return self.input(slot) if callable(self.input) else self.input


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _check_cron(name: str, cron: object) -> None:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:
        raise ConfigurationError(
            f"schedule {name!r} uses cron=, which needs cronsim: install queuert-core[cron]"
        ) from None
    if not isinstance(cron, str):
        raise ScheduleError(f"cron= of schedule {name!r} must be a string, got {show(cron)}")
    try:
        CronSim(cron, datetime(2020, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(
            f"cron= of schedule {name!r} is not a valid cron expression ({exc}): {show(cron)}"
        ) from None


# -- starting slots ------------------------------------------------------------------------


async def start_slot(app: Queuert[Any], schedule: ScheduleDef, slot: datetime) -> bool:
    """Start ``schedule``'s chain for ``slot`` unless some worker already did; return
    whether this call started it."""
    chain = schedule.chain
    (job,) = app._new_chain_jobs(chain, [schedule.input_for(slot)], None, None, None)
    started = await app.state.start_scheduled_chain(
        tx=None, schedule=schedule.name, slot_time=slot, job=job
    )
    if started:
        batch = PendingNotifications()
        batch.scheduled[chain.name] += 1
        await app.publish(batch)
    return started


def due_slots(
    schedule: ScheduleDef, last: ScheduleSlot | None, baseline: datetime, now: datetime
) -> list[datetime]:
    """The slots a worker should start at ``now``, by the schedule's catch-up policy,
    given the last slot started (``None``: never; slots after ``baseline`` count)."""
    after = last.slot_time if last is not None else baseline
    slots = schedule.slots_between(after, now, MAX_CATCH_UP)
    if not slots:
        return []
    if schedule.catch_up == "all":
        return slots
    if schedule.catch_up == "latest":
        return slots[-1:]
    return slots[-1:] if now - slots[-1] < ON_TIME else []


class Scheduler:
    """Starts the due slots of an app's schedules; every worker runs one."""

    def __init__(self, app: Queuert[Any], *, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.clock = clock or (lambda: datetime.now(UTC))
        self.baseline = self.clock()

    async def tick(self) -> list[tuple[str, datetime]]:
        """Start every due slot of every schedule now; return the (schedule, slot)
        pairs this call started. A schedule whose reading or start fails is logged
        and tried again at the next tick."""
        now = self.clock()
        started: list[tuple[str, datetime]] = []
        for schedule in self.app.schedules.values():
            try:
                last = await self.app.state.get_last_schedule_slot(tx=None, schedule=schedule.name)
                for slot in due_slots(schedule, last, self.baseline, now):
                    if await start_slot(self.app, schedule, slot):
                        started.append((schedule.name, slot))
            except Exception as exc:
                log.error("schedule %s: starting its slot failed: %s", schedule.name, exc)
        return started

    def seconds_to_next(self) -> float:
        now = self.clock()
        soonest = min(
            (s.next_slot(now) for s in self.app.schedules.values()),
            default=now + timedelta(seconds=MAX_WAIT),
        )
        return min(MAX_WAIT, max(0.0, (soonest - now).total_seconds()))

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick at every slot until ``stopping`` is set."""
        while not stopping.is_set():
            await self.tick()
            try:
                async with asyncio.timeout(self.seconds_to_next()):
                    await stopping.wait()
            except TimeoutError:
                pass


async def list_schedules(app: Queuert[Any]) -> list[ScheduleInfo]:
    """Each schedule of ``app`` with its next slot and the last slot started."""
    now = datetime.now(UTC)
    infos = []
    for schedule in app.schedules.values():
        last = await app.state.get_last_schedule_slot(tx=None, schedule=schedule.name)
        infos.append(
            ScheduleInfo(
                name=schedule.name,
                chain=schedule.chain.name,
                cron=schedule.cron,
                every=schedule.every,
                timezone=schedule.timezone,
                catch_up=schedule.catch_up,
                next_slot=schedule.next_slot(now),
                last_slot=None if last is None else last.slot_time,
                last_chain_id=None if last is None else last.chain_id,
            )
        )
    return infos
