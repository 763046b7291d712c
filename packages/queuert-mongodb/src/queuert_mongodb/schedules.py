"""Schedule slots: one document per started slot in ``{prefix}schedule_slots``,
whose ``_id`` is the slot itself, so a slot is started once.

A start upserts the slot's document with ``$setOnInsert`` in the transaction
that creates the chain: when the document exists the upsert changes nothing
and the start writes nothing else. Two transactions starting one slot at once
conflict on the document; the one that runs again finds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from queuert.records import ScheduleSlot
from queuert_mongodb.documents import Document, utc


def slot_id(schedule: str, slot_time: datetime) -> dict[str, Any]:
    """The ``_id`` of a slot (a document: its fields in this order)."""
    return {"schedule": schedule, "slot_time": slot_time}


def slot_insert(schedule: str, slot_time: datetime, chain_id: str) -> dict[str, Any]:
    """The upsert update recording the slot with ``chain_id``; changes nothing when
    the slot is recorded."""
    return {"$setOnInsert": {"schedule": schedule, "slot_time": slot_time, "chain_id": chain_id}}


LATEST_SORT = [("schedule", 1), ("slot_time", -1)]


def slot_from_document(doc: Document) -> ScheduleSlot:
    slot_time = utc(doc["slot_time"])
    assert slot_time is not None
    return ScheduleSlot(schedule=doc["schedule"], slot_time=slot_time, chain_id=doc["chain_id"])
