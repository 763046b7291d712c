"""The caller's transaction: what :meth:`StateAdapter.caller_transaction` makes of a
transaction object the application passes keeps the writes in that transaction."""

from __future__ import annotations

import pytest

from queuert.conformance.support import StateAdapterAny, new_job


class _Rollback(Exception):
    """Raised inside a transaction block to roll it back."""


class CallerTransactionCases:
    @pytest.mark.asyncio
    async def test_caller_transaction_writes_roll_back_with_the_callers(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = new_job()
        with pytest.raises(_Rollback):
            async with state_adapter.transaction() as tx:
                adopted = await state_adapter.caller_transaction(tx)
                await state_adapter.create_jobs(tx=adopted, jobs=[job])
                assert await state_adapter.get_job(tx=adopted, job_id=job.id) is not None
                raise _Rollback
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None

    @pytest.mark.asyncio
    async def test_caller_transaction_writes_commit_with_the_callers(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = new_job()
        async with state_adapter.transaction() as tx:
            adopted = await state_adapter.caller_transaction(tx)
            await state_adapter.create_jobs(tx=adopted, jobs=[job])
        assert await state_adapter.get_job(tx=None, job_id=job.id) is not None
