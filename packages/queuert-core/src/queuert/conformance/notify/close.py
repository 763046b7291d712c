"""Closing: idempotent, and what is left of an adapter afterwards does not raise."""

from __future__ import annotations

import pytest

from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter


class CloseCases:
    @pytest.mark.asyncio
    async def test_close_is_idempotent(self, notify_adapter: NotifyAdapter) -> None:
        await notify_adapter.subscribe_chain_completed(chain_id=None, listener=Recorder[str]())
        await notify_adapter.close()
        await notify_adapter.close()

    @pytest.mark.asyncio
    async def test_publish_after_close_does_not_raise(self, notify_adapter: NotifyAdapter) -> None:
        await notify_adapter.close()
        await notify_adapter.publish_job_scheduled(queue=unique("queue"), count=1)
        await notify_adapter.publish_chain_completed(chain_id=unique("chain"))
        await notify_adapter.publish_lease_lost(job_id=unique("job"))

    @pytest.mark.asyncio
    async def test_unsubscribe_after_close_does_not_raise(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        subscription = await notify_adapter.subscribe_lease_lost(
            job_id=None, listener=Recorder[str]()
        )
        await notify_adapter.close()
        await subscription.unsubscribe()
