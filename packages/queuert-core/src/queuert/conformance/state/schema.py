"""Schema checks and migration on a migrated store."""

from __future__ import annotations

import asyncio

import pytest

from queuert.conformance.support import StateAdapterAny, create_one


class SchemaCases:
    @pytest.mark.asyncio
    async def test_check_schema_passes_when_migrated(self, state_adapter: StateAdapterAny) -> None:
        await state_adapter.check_schema()

    @pytest.mark.asyncio
    async def test_migrate_again_keeps_data(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        await state_adapter.migrate()
        await state_adapter.check_schema()
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    @pytest.mark.asyncio
    async def test_concurrent_migrations_succeed(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        await asyncio.gather(state_adapter.migrate(), second_state_adapter.migrate())
        await state_adapter.check_schema()
        await second_state_adapter.check_schema()
