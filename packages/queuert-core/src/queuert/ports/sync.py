"""What a synchronous application needs from the adapters (see :mod:`queuert.sync`).

Workers stay asynchronous; only the calls an application makes inside its own
transaction (start chains, read, cancel, retry, complete from outside) have a
synchronous form. They reuse the adapters' asynchronous operations unchanged:

- A state adapter turns the caller's synchronous driver connection into a ``Tx``
  on which its operations never suspend (:meth:`StateAdapter.sync_transaction
  <queuert.ports.state.StateAdapter.sync_transaction>`): a small executor that
  sends the adapter's own statements through the blocking driver and returns their
  rows as the asynchronous driver would. Core then runs each operation to its end
  on the calling thread, with no event loop (:func:`queuert.drive.drive`), so one set
  of statements and row decoders serves both.
- A notify adapter may offer a :class:`SyncPublisher` (:meth:`NotifyAdapter.sync_publisher
  <queuert.ports.notify.NotifyAdapter.sync_publisher>`) that sends its signals
  from a thread with no event loop, for the signals the state adapter's writes do not
  carry themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class SyncPublisher(ABC):
    """Sends a notify adapter's signals synchronously, with the payloads its
    asynchronous ``publish_*`` methods send, so the same subscribers receive them.

    Signals are hints: a publisher whose transport is down logs and returns instead
    of raising, and gives up on a transport that does not answer within a timeout
    of its own."""

    @abstractmethod
    def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        """Announce that ``count`` jobs became eligible on ``queue``."""

    @abstractmethod
    def publish_chain_completed(self, *, chain_id: str) -> None:
        """Announce that the chain reached a terminal status."""

    @abstractmethod
    def publish_lease_lost(self, *, job_id: str) -> None:
        """Announce that the lease of the job was taken away from its holder."""

    def close(self) -> None:  # optional hook, a no-op by default
        """Release the connections the publisher opened. Idempotent."""
        return None
