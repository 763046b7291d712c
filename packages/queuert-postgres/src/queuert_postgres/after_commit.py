"""Signals of a leased transaction's last write, sent once its transaction committed.

A transaction that runs NOTIFY takes a database-wide lock when it commits and holds
it until its commit record is flushed, so every committing transaction that
notified waits for the one before it: concurrent finalizes, each ending a chain
and so signalling it, would commit one flush at a time instead of sharing
flushes. The last write of a leased transaction (the finalize's completion or
continuation) therefore writes without signals; its signals are handed to the
bound notifier after the commit, which sends them in a statement of their own
(no write, so no flush), together with the others of the moment; the finalize
does not wait for them to leave.

The same holds for the adapter's own one-statement writes that start jobs or end
chains: chains started without a caller's transaction (``tx=None``) and the
worker's batched completions. Their signals are sent after the statement, which
commits on its own. Concurrent starters then share flushes instead of taking
turns, as do a worker's completions and the starts committing beside them.
Writes in a caller's transaction keep their signals in the statement: the
adapter does not see that transaction commit.

Delivery stays what the notifier port promises: after the commit, never for a
transaction that rolled back. A process that dies between the commit and the
send loses the hint, as it would lose a hint sent after any commit; waiters
fall back to polling and workers to their poll interval.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from queuert_postgres.notify import PostgresNotifyAdapter

Signal: TypeAlias = tuple[Literal["scheduled", "chain"], str]
"""``("scheduled", queue)`` (one job scheduled) or ``("chain", chain_id)`` (ended)."""


class AfterCommitSignals:
    """The signals held by each open leased transaction of one state adapter,
    keyed by its connection."""

    def __init__(self) -> None:
        self._notify: PostgresNotifyAdapter | None = None
        self._held: dict[int, list[Signal]] = {}

    def bind(self, notify: PostgresNotifyAdapter) -> None:
        """Send through ``notify`` (the notifier the adapter's writes signal for)."""
        self._notify = notify

    @property
    def bound(self) -> bool:
        """Whether a notifier is bound: signals of the adapter's own writes go
        through it after the commit."""
        return self._notify is not None

    def open(self, conn: object) -> list[Signal] | None:
        """Start holding signals for the transaction on ``conn``; ``None`` (nothing
        held: writes signal themselves) when no notifier is bound."""
        if self._notify is None:
            return None
        held: list[Signal] = []
        self._held[id(conn)] = held
        return held

    def close(self, conn: object) -> None:
        """The transaction on ``conn`` ended (committed or not)."""
        self._held.pop(id(conn), None)

    def held(self, conn: object) -> list[Signal] | None:
        """Where a write in the transaction on ``conn`` leaves its signals, or ``None``
        when that transaction holds none (it must signal in its own statement)."""
        return self._held.get(id(conn))

    def send(self, signals: list[Signal]) -> None:
        """Hand ``signals`` to the notifier (after the commit) without waiting for
        them to leave: the notifier sends them with the others of the moment, and the
        finalize that committed them is not held up (nor can a cancellation of its
        task, arriving after the commit, make it look failed). Never raises, as
        publishing never does."""
        notify = self._notify
        if notify is None:
            return
        notify.post_signals(
            scheduled_queues=[key for kind, key in signals if kind == "scheduled"],
            ended_chains=[key for kind, key in signals if kind == "chain"],
        )
