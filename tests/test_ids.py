"""Job and chain ids: UUIDv7 strings whose order is creation order in a process."""

from __future__ import annotations

import time
import uuid

import pytest

from queuert import ids


def test_ids_are_version_7_uuids_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = ids.new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_sort_in_creation_order_and_never_repeat() -> None:
    # More than the 4,096 a millisecond's counter holds, made as fast as possible.
    made = [ids.new_id() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_ids_keep_their_order_when_the_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = ids.new_id()
    stepped_back = time.time_ns() - 5_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: stepped_back)
    later = [ids.new_id() for _ in range(5_000)]
    assert [first, *later] == sorted([first, *later])
    assert all(uuid.UUID(made).version == 7 for made in later)
