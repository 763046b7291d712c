"""The synchronous API, for applications whose database code is synchronous
(Django, Flask, scripts on psycopg or sqlite3). Workers stay asynchronous.

:class:`SyncClient` starts chains, reads them, cancels, retries and completes
jobs inside the caller's own transaction, on the application's synchronous driver
connection: a psycopg 3 ``Connection`` (PostgreSQL adapter) or a
``sqlite3.Connection`` (SQLite adapter). It writes exactly what
:class:`~queuert.Queuert`'s asynchronous methods write: the same validation and
errors (raised before anything is written), the same job records, through the
state adapter's own operations and statements (see :mod:`queuert.ports.sync`).

Build it from the application the workers use::

    app = queuert.Queuert(state=..., notify=..., chains=[image_chain])
    client = queuert.sync.SyncClient(app)

    with psycopg.connect(dsn) as conn:          # commits when the block exits
        conn.execute("INSERT INTO images ...")
        handle = client.enqueue_job_chain(conn, image_chain, ImageInput(...))

Building the client and its calls never start an event loop; the application's
adapters are used only for their configuration (schema, table prefix, notifier),
not for their connections.

**The caller's transaction.** The connection must be able to hold a transaction:
psycopg's in its default (non-autocommit) mode begins one at the first
statement, or at ``with conn.transaction():``; sqlite3's begins one for us when
it manages transactions (its default ``isolation_level``) and none is open. A
connection in autocommit mode outside a transaction raises
:class:`~queuert.errors.TransactionClosedError`, as the asynchronous API does.
The client never commits or rolls back: the chain exists exactly when the
caller's transaction commits.

**Notifications.** A write also produces signals for idle workers (job scheduled,
chain completed, lease lost). With PostgreSQL and its notifier on the same
database, the writes carry them (NOTIFY in the same transaction): they leave with
the commit and nothing is to be done. Otherwise they are sent through the
notifier's synchronous publisher
(:meth:`~queuert.ports.notify.NotifyAdapter.sync_publisher`), at a time the caller
chooses:

- inside ``with client.with_notify():`` (around the transaction), when the block
  exits normally, after the commit; dropped when it raises;
- with ``SyncClient(app, on_commit=hook)``, through ``hook(send)`` after each
  write: a framework's after-commit hook (Django:
  ``lambda send: transaction.on_commit(send, using=alias)``) sends them exactly
  when the transaction commits;
- otherwise at once, before the caller's commit (as the asynchronous API does
  outside ``with_notify``): a woken worker that does not see the job yet looks
  again shortly after.

Notifications are hints: without them, or with a notifier that has no
synchronous publisher, workers find the jobs at their next poll.

Calls must not be made from a thread running an event loop (they would block
it): they raise :class:`~queuert.errors.ValidationError` there; use the
asynchronous API, or ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from queuert.blockers import blocker_ids
from queuert.client import ChainHandle, Queuert
from queuert.dedup import dedup_requests
from queuert.definitions import ChainDef, QueueDef
from queuert.drive import drive
from queuert.errors import (
    ValidationError,
)
from queuert.notifications import PendingNotifications
from queuert.operations import check_settlement, resumed, retryable, settlement
from queuert.records import ChainRecord, DedupScope, JobRecord, JobStatus, NewJob
from queuert.validation import check_text, show

InT = TypeVar("InT")
OutT = TypeVar("OutT")

log = logging.getLogger("queuert.sync")

OnCommit = Callable[[Callable[[], None]], None]
"""A hook that calls its argument once the caller's transaction has committed
(and never when it rolls back), such as Django's ``transaction.on_commit``."""

_NO_OUTPUT: Any = object()

_collecting: contextvars.ContextVar[PendingNotifications | None] = contextvars.ContextVar(
    "queuert_sync_pending_notifications", default=None
)


class SyncClient:
    """Synchronous calls of ``app`` (a configured :class:`~queuert.Queuert`) on the
    caller's synchronous connection; see the module documentation for the
    connections accepted, transactions and notifications.

    ``on_commit``, when given, receives for each write a callable that sends its
    signals; it must call it after the caller's transaction commits (and drop it on
    rollback). Raises :class:`~queuert.errors.ValidationError` when ``app`` is not a
    :class:`~queuert.Queuert` or ``on_commit`` is not callable, and
    :class:`~queuert.errors.UnsupportedOperationError` (at the first call) when the
    state adapter has no synchronous form.

    Thread-safe as far as the client goes: it keeps no per-call state of its own;
    a connection must not be shared between threads at once, as the drivers say.
    """

    def __init__(self, app: Queuert[Any], *, on_commit: OnCommit | None = None) -> None:
        if not isinstance(app, Queuert):
            raise ValidationError(f"app must be a queuert.Queuert, got {show(app)}")
        if on_commit is not None and not callable(on_commit):
            raise ValidationError(f"on_commit must be callable, got {show(on_commit)}")
        self.app = app
        self._on_commit = on_commit
        notify = app.notify
        self._publisher = notify.sync_publisher() if notify is not None else None

    @classmethod
    def from_url(
        cls,
        *,
        chains: Sequence[ChainDef[Any, Any]],
        state: str | None = None,
        notify: str | None = None,
        on_commit: OnCommit | None = None,
    ) -> SyncClient:
        """A client for the adapters the URLs select (the URLs the workers use;
        ``None`` reads ``QUEUERT_STATE_URL`` / ``QUEUERT_NOTIFY_URL``), built without
        an event loop and without connecting (see :func:`queuert.urls.state_for_sync`):
        the adapters serve only the synchronous calls, on the caller's connections.
        Raises :class:`~queuert.errors.ConfigurationError` for a bad URL or a scheme
        whose adapter is not installed or cannot be built this way, and
        ValidationError for bad ``chains``."""
        from queuert import urls

        app = Queuert(
            state=urls.state_for_sync(state), notify=urls.notify_for_sync(notify), chains=chains
        )
        return cls(app, on_commit=on_commit)

    # -- the caller's connection ---------------------------------------------------

    def _tx(self, conn: object) -> Any:
        """The state adapter's transaction object for ``conn``, checked (raises
        InvalidTransactionError / TransactionClosedError before anything is written)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ValidationError(
                "queuert.sync blocks and must not run on a thread running an event loop: "
                "use the asynchronous Queuert methods there, or asyncio.to_thread"
            )
        return self.app.state.sync_transaction(conn)

    # -- starting chains -----------------------------------------------------------

    def enqueue_job_chain(
        self,
        conn: object,
        chain: ChainDef[InT, OutT],
        input: InT,
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
        dedup_key: str | None = None,
        dedup_scope: DedupScope | str = "incomplete",
        dedup_window: timedelta | None = None,
    ) -> ChainHandle[OutT]:
        """Start a chain with its first job inside the caller's transaction on
        ``conn``; it exists exactly when that transaction commits. Same options,
        validation and errors as :meth:`Queuert.enqueue_job_chain
        <queuert.Queuert.enqueue_job_chain>`: ``delay`` or ``start_at``, ``priority``,
        ``blockers`` (handles of chains it waits on), or a deduplication key
        (``dedup_key``, ``dedup_scope``, ``dedup_window``: the handle is then that of
        the chain holding the key, with ``deduplicated`` true). Raises
        :class:`~queuert.errors.ValidationError` subclasses before anything is
        written, and :class:`~queuert.errors.JobNotFoundError` naming a blocker chain
        that does not exist (nothing written)."""
        handles = self.enqueue_job_chains(
            conn,
            chain,
            [input],
            delay=delay,
            start_at=start_at,
            priority=priority,
            blockers=blockers,
            dedup_keys=None if dedup_key is None else [dedup_key],
            dedup_scope=dedup_scope,
            dedup_window=dedup_window,
        )
        return handles[0]

    def enqueue_job_chains(
        self,
        conn: object,
        chain: ChainDef[InT, OutT],
        inputs: Sequence[InT],
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
        dedup_keys: Sequence[str] | None = None,
        dedup_scope: DedupScope | str = "incomplete",
        dedup_window: timedelta | None = None,
    ) -> list[ChainHandle[OutT]]:
        """Start one chain per input in one batch write; the contract of
        :meth:`enqueue_job_chain`, with one deduplication key per input in
        ``dedup_keys``. Every input is validated before anything is written."""
        app = self.app
        jobs = app._new_chain_jobs(chain, inputs, delay, start_at, priority)
        blocker_chain_ids = None if blockers is None else blocker_ids(blockers, app.chains)
        dedup = (
            None
            if dedup_keys is None
            else dedup_requests(dedup_keys, len(jobs), dedup_scope, dedup_window)
        )
        if not jobs:
            return []
        if dedup is not None and blocker_chain_ids is not None:
            raise ValidationError("a chain start takes a dedup key or blockers, not both")
        tx = self._tx(conn)
        batch = PendingNotifications()
        if dedup is not None:
            holders = drive(app.state.create_deduplicated_jobs(tx=tx, jobs=jobs, dedup=dedup))
            pairs = list(zip(jobs, holders, strict=True))
            started = sum(1 for job, holder in pairs if holder == job.id)
            if started:
                batch.scheduled[chain.name] += started
            handles = [
                ChainHandle(holder, chain, deduplicated=holder != job.id) for job, holder in pairs
            ]
        elif blocker_chain_ids is not None:
            created = drive(
                app.state.create_blocked_jobs(
                    tx=tx,
                    jobs=jobs,
                    blocker_chain_ids=blocker_chain_ids,
                    run_on_blocker_failure=chain.on_blocker_failure == "run",
                )
            )
            for record in created:
                if record.status is JobStatus.PENDING:
                    batch.scheduled[chain.name] += 1
                elif record.status.is_terminal:
                    batch.completed_chains.append(record.chain_id)
            handles = [ChainHandle(job.id, chain) for job in jobs]
        else:
            drive(app.state.create_jobs(tx=tx, jobs=jobs))
            # Delayed jobs are announced too, as the asynchronous API does.
            batch.scheduled[chain.name] += len(jobs)
            handles = [ChainHandle(job.id, chain) for job in jobs]
        self._after_commit(batch)
        return handles

    # -- reading -------------------------------------------------------------------

    def get_chain(self, conn: object, chain_id: str) -> ChainRecord | None:
        """The chain with this id as the caller's transaction sees it, or ``None``."""
        chain_id = check_text("chain_id", chain_id)
        return drive(self.app.state.get_chain(tx=self._tx(conn), chain_id=chain_id))

    def get_job(self, conn: object, job_id: str) -> JobRecord | None:
        """The job with this id as the caller's transaction sees it, or ``None``."""
        job_id = check_text("job_id", job_id)
        return drive(self.app.state.get_job(tx=self._tx(conn), job_id=job_id))

    # -- operating chains ------------------------------------------------------------

    def cancel_chain(self, conn: object, chain_id: str) -> ChainRecord:
        """Cancel a chain at any point, as :meth:`Queuert.cancel_chain
        <queuert.Queuert.cancel_chain>` does: its current job becomes ``cancelled``
        and a worker running it loses its lease when the transaction commits.
        Raises :class:`~queuert.errors.JobNotFoundError` for an unknown id and
        :class:`~queuert.errors.ChainEndedError` for a chain that already ended."""
        chain_id = check_text("chain_id", chain_id)
        revoked = drive(self.app.state.revoke_chain(tx=self._tx(conn), chain_id=chain_id))
        self.app.metrics.incr("chains.cancelled")
        batch = PendingNotifications()
        batch.completed_chains.append(chain_id)
        if revoked.revoked_lease is not None:
            batch.lease_lost.append(revoked.revoked_lease.job_id)
        self._after_commit(batch)
        return revoked.chain

    def retry_chain(self, conn: object, chain_id: str) -> ChainRecord:
        """Resume a ``failed`` or ``cancelled`` chain at the job it ended on, with a
        fresh attempt budget, as :meth:`Queuert.retry_chain
        <queuert.Queuert.retry_chain>` does. Raises
        :class:`~queuert.errors.JobNotFoundError` for an unknown id and
        :class:`~queuert.errors.JobStateError` for a chain that did not fail and was
        not cancelled."""
        chain_id = check_text("chain_id", chain_id)
        tx = self._tx(conn)
        state = self.app.state
        chain = retryable(chain_id, drive(state.get_chain(tx=tx, chain_id=chain_id)))
        job = drive(state.resume_job(tx=tx, job_id=chain.last_job_id))
        batch = PendingNotifications()
        batch.scheduled[job.queue] += 1
        self._after_commit(batch)
        return resumed(chain, job)

    def complete_job(
        self,
        conn: object,
        job_id: str,
        *,
        output: Any = _NO_OUTPUT,
        continue_with: tuple[QueueDef[Any, Any], Any] | None = None,
    ) -> JobRecord:
        """End a job that has not ended from application code, in the caller's
        transaction, as :meth:`Queuert.complete_job <queuert.Queuert.complete_job>`
        does: with ``output`` it completes the chain, with ``continue_with=(queue,
        input)`` it continues it. Raises :class:`~queuert.errors.JobNotFoundError`,
        :class:`~queuert.errors.ChainEndedError` for a job that already ended, and
        ValidationError subclasses before anything is written."""
        job_id = check_text("job_id", job_id)
        has_output = output is not _NO_OUTPUT
        check_settlement(has_output, continue_with)
        tx = self._tx(conn)
        state = self.app.state
        job = drive(state.get_job(tx=tx, job_id=job_id))
        text, next_job = settlement(
            self.app, job_id, job, output if has_output else None, has_output, continue_with
        )
        settled = drive(state.settle_job(tx=tx, job_id=job_id, output=text, next_job=next_job))
        self.app.metrics.incr("jobs.completed_outside")
        batch = _settled_batch(settled.job, next_job)
        if settled.revoked_lease is not None:
            batch.lease_lost.append(settled.revoked_lease.job_id)
        self._after_commit(batch)
        return settled.job

    # -- notifications -----------------------------------------------------------------

    @contextmanager
    def with_notify(self) -> Iterator[None]:
        """Hold back the signals of the calls made inside the block (in this thread
        or context) and send them when it exits normally, after the caller's
        transaction committed; nothing is sent when the block raises. Wrap the
        transaction in it, as with :meth:`Queuert.with_notify
        <queuert.Queuert.with_notify>`."""
        mine = PendingNotifications()
        token = _collecting.set(mine)
        try:
            yield
        finally:
            _collecting.reset(token)
        self.publish(mine)

    def publish(self, batch: PendingNotifications) -> None:
        """Send ``batch`` now through the notifier's synchronous publisher (signals
        the state adapter's writes carried themselves are not sent again). Never
        raises: notifications are hints."""
        app = self.app
        publisher = self._publisher
        if app.notify is None:
            return
        lease_lost = list(batch.lease_lost)
        carried = app._signals_in_writes
        scheduled = {} if carried else {q: n for q, n in batch.scheduled.items() if n > 0}
        completed = [] if carried else list(batch.completed_chains)
        if not (lease_lost or scheduled or completed):
            return
        if publisher is None:
            log.debug("the notifier has no synchronous publisher: workers will poll")
            return
        sends: list[tuple[str, Callable[[], None]]] = [
            *(("lease_lost", partial(publisher.publish_lease_lost, job_id=j)) for j in lease_lost),
            *(
                ("job_scheduled", partial(publisher.publish_job_scheduled, queue=q, count=n))
                for q, n in scheduled.items()
            ),
            *(
                ("chain_completed", partial(publisher.publish_chain_completed, chain_id=c))
                for c in completed
            ),
        ]
        for signal, send in sends:
            # Counted as the asynchronous publishes are.
            app.metrics.incr(f"notify.{signal}.published")
            try:
                send()
            except Exception as exc:  # hints only: the caller's work is done and committed
                app.metrics.incr(f"notify.{signal}.publish_errors")
                log.warning("publishing %s failed, workers will poll: %r", signal, exc)

    def _after_commit(self, batch: PendingNotifications) -> None:
        outer = _collecting.get()
        if outer is not None:
            outer.merge(batch)
        elif self._on_commit is not None:
            self._on_commit(lambda: self.publish(batch))
        else:
            self.publish(batch)

    def close(self) -> None:
        """Close the notifier's synchronous publisher (its connections). Idempotent."""
        if self._publisher is not None:
            self._publisher.close()


def _settled_batch(job: JobRecord, next_job: NewJob | None) -> PendingNotifications:
    batch = PendingNotifications()
    if next_job is not None:
        batch.scheduled[next_job.queue] += 1
    else:
        batch.completed_chains.append(job.chain_id)
        # The jobs the completion unblocked wake their workers too.
        for queue in job.unblocked_queues:
            batch.scheduled[queue] += 1
    return batch
