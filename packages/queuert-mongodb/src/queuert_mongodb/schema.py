"""Applying and checking the versioned schema (see :mod:`queuert_mongodb.migrations`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pymongo
from pymongo import ReadPreference
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from queuert.errors import QueuertError, SchemaNotMigratedError
from queuert_mongodb.errors import DRIVER_ERRORS, schema_missing, translate
from queuert_mongodb.migrations import (
    SCHEMA_DOCUMENT_ID,
    SCHEMA_VERSION,
    IndexSpec,
    migration_plan,
    stored_version,
    version_update,
)
from queuert_mongodb.names import Collections

_NAMESPACE_EXISTS = 48
_INDEX_BUILD_IN_PROGRESS = 68

Collection = AsyncCollection[dict[str, Any]]


class Schema:
    """The schema of one database and collection prefix."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], collections: Collections, timeout_s: float
    ) -> None:
        self._db = db
        self._collections = collections
        self._meta: Collection = db.get_collection(
            collections.meta, read_preference=ReadPreference.PRIMARY
        )
        self._timeout_s = timeout_s

    async def migrate(self) -> None:
        """Create the collections, then the indexes of every version the database
        lacks, recording each version. Idempotent and safe to run concurrently."""
        try:
            # Building indexes on a large collection takes longer than one operation.
            with pymongo.timeout(self._timeout_s * 6):
                current = await self._version()
                self._refuse_newer(current)
                await self._create_collections(("jobs", "meta"))
                for migration in migration_plan(current):
                    # Collections are created before the transactions that write them:
                    # MongoDB before 4.4 cannot create one inside a transaction, and
                    # creating one there conflicts with every concurrent transaction.
                    await self._create_collections(migration.collections)
                    for role, specs in migration.index_groups().items():
                        await self._create_indexes(role, specs)
                    await self._record_version(migration.version)
        except QueuertError:
            raise
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def check(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError` unless the database is
        at :data:`~queuert_mongodb.migrations.SCHEMA_VERSION`."""
        try:
            with pymongo.timeout(self._timeout_s):
                version = await self._version()
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        database, jobs = self._db.name, self._collections.jobs
        if version is None:
            raise schema_missing(database, jobs, "no schema version recorded")
        if version < SCHEMA_VERSION:
            raise schema_missing(
                database,
                jobs,
                f"schema version {version}, this queuert-mongodb needs {SCHEMA_VERSION}",
            )
        self._refuse_newer(version)

    async def _version(self) -> int | None:
        return stored_version(await self._meta.find_one({"_id": SCHEMA_DOCUMENT_ID}))

    def _refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaNotMigratedError(
                f"MongoDB database {self._db.name!r} has queuert schema version {version}, "
                f"newer than the {SCHEMA_VERSION} this queuert-mongodb knows; upgrade "
                "queuert-mongodb"
            )

    async def _create_collections(self, roles: Sequence[str]) -> None:
        for role in roles:
            try:
                await self._db.create_collection(self._collections.named(role), check_exists=False)
            except OperationFailure as exc:
                if exc.code != _NAMESPACE_EXISTS:
                    raise

    async def _create_indexes(self, role: str, specs: Sequence[IndexSpec]) -> None:
        collection = self._db.get_collection(self._collections.named(role))
        for attempt in range(50):
            try:
                await collection.create_indexes([spec.model() for spec in specs])
                return
            except OperationFailure as exc:
                # Another process is building the same index: wait for it to finish.
                if exc.code != _INDEX_BUILD_IN_PROGRESS or attempt == 49:
                    raise
                await asyncio.sleep(0.1)

    async def _record_version(self, version: int) -> None:
        for attempt in range(2):
            try:
                await self._meta.update_one(
                    {"_id": SCHEMA_DOCUMENT_ID}, version_update(version), upsert=True
                )
                return
            except DuplicateKeyError:
                # Another process inserted the document first: update it now.
                if attempt:
                    raise
