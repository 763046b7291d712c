"""The schema operations of the SQLite state adapter: migrating, checking the
version and listing the statements that create the schema."""

from __future__ import annotations

import textwrap

from queuert.errors import SchemaDamagedError, SchemaNotMigratedError, SchemaTooNewError
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.clock import now_us
from queuert_sqlite.errors import schema_missing
from queuert_sqlite.migrations import MIGRATIONS, SCHEMA_VERSION


class SchemaOps(SqliteBase):
    """Migrations and the schema check."""

    async def migrate(self) -> None:
        """Apply every migration this version has that the database lacks, each
        recorded in ``{prefix}migrations``. Idempotent; concurrent runs, from any
        process, serialise on the write lock."""
        sql = self._sql
        async with self._db.transaction(None) as conn:
            await self._db.run(conn, sql.create_migrations)
            applied = {row[0] for row in await self._db.run(conn, sql.applied_versions)}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.render(self.table_prefix):
                    await self._db.run(conn, statement)
                await self._db.run(
                    conn, sql.record_migration, (migration.version, migration.name, now_us())
                )

    async def check_schema(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError`, naming the call to
        :meth:`migrate`, unless the database is at this adapter's schema version."""
        try:
            rows = await self._db.read(None, self._sql.applied_versions, ())
        except SchemaNotMigratedError:
            raise schema_missing(self.path, "no queuert tables", self._error_args()) from None
        applied = {row[0] for row in rows}
        version = max(applied, default=None)
        # Versions may have gaps: every migration this adapter has must be applied.
        if version is None or any(m.version not in applied for m in MIGRATIONS):
            raise schema_missing(
                self.path,
                f"schema version {version or 0}, this queuert-sqlite needs {SCHEMA_VERSION}",
                self._error_args(),
            )
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"SQLite database {self.path!r} has queuert schema version {version}, newer "
                f"than the {SCHEMA_VERSION} this queuert-sqlite knows; upgrade queuert-sqlite"
            )
        applied = {row[0] for row in await self._db.read(None, self._sql.applied_versions, ())}
        # Versions are checked one by one: a database may be at the latest version but
        # lack one that another line of releases added before it.
        missing = [m.version for m in MIGRATIONS if m.version not in applied]
        if version is None or missing:
            raise schema_missing(
                self.path,
                f"schema version {version or 0} (missing {missing}), "
                f"this queuert-sqlite needs {SCHEMA_VERSION}",
                self._error_args(),
            )
        tables = await self._db.read(
            None,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            (self._sql.jobs_table,),
        )
        if not tables:
            raise SchemaDamagedError(
                f"SQLite database {self.path!r} records queuert schema version {version} but "
                f"its table {self._sql.jobs_table!r} is missing; migrate() does not recreate "
                "tables of recorded versions: restore it or use a new database"
            )

    async def schema_sql(self) -> list[str]:
        statements = [self._sql.create_migrations]
        for migration in MIGRATIONS:
            statements += [
                textwrap.dedent(text).strip() for text in migration.render(self.table_prefix)
            ]
            statements.append(
                f"INSERT INTO {self._sql.migrations_table} (version, name, applied_at) VALUES "
                f"({int(migration.version)}, '{migration.name}', "
                "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
            )
        return statements
