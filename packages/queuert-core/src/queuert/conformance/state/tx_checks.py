"""The caller's transaction: telling an open transaction from one that ended, and
refusing what is not a transaction of the adapter."""

from __future__ import annotations

import pytest

from queuert.conformance.support import StateAdapterAny, new_job
from queuert.errors import InvalidTransactionError, TransactionClosedError


class TransactionCheckCases:
    @pytest.mark.asyncio
    async def test_is_transaction_open_is_true_only_inside_the_transaction(
        self, state_adapter: StateAdapterAny
    ) -> None:
        async with state_adapter.transaction() as tx:
            assert await state_adapter.is_transaction_open(tx=tx) is True
        assert await state_adapter.is_transaction_open(tx=tx) is False

    @pytest.mark.asyncio
    async def test_check_transaction_accepts_an_open_transaction(
        self, state_adapter: StateAdapterAny
    ) -> None:
        async with state_adapter.transaction() as tx:
            checked = await state_adapter.check_transaction(tx=tx)
            (created,) = await state_adapter.create_jobs(tx=checked, jobs=[new_job()])
        assert await state_adapter.get_job(tx=None, job_id=created.id) == created

    @pytest.mark.asyncio
    async def test_check_transaction_refuses_a_transaction_that_ended(
        self, state_adapter: StateAdapterAny
    ) -> None:
        async with state_adapter.transaction() as tx:
            pass
        with pytest.raises(TransactionClosedError):
            await state_adapter.check_transaction(tx=tx)

    @pytest.mark.asyncio
    async def test_check_transaction_refuses_an_object_of_another_type(
        self, state_adapter: StateAdapterAny
    ) -> None:
        for wrong in ("a transaction", object(), None.__class__):
            with pytest.raises(InvalidTransactionError):
                await state_adapter.check_transaction(tx=wrong)
