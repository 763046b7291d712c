"""queuert's schema through Django's migration framework.

:class:`ApplySchema` is the operation of this app's migrations: on the queuert
database (``QUEUERT["DATABASE"]``) it runs the state adapter's own versioned,
idempotent migration, so ``manage.py migrate`` creates or upgrades queuert's
tables beside the project's, and a database migrated earlier with
``queuert migrate`` is left as it is. ``manage.py sqlmigrate queuert_django 0001``
prints the adapter's DDL (``schema_sql``) instead, for teams whose DBA applies it.
"""

from __future__ import annotations

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from queuert import urls
from queuert_django import database
from queuert_django.aio import run_async
from queuert_django.conf import config


async def _migrate(url: str) -> None:
    state = await urls.state_from_url(url)
    try:
        await state.migrate()
    finally:
        await state.close()


async def _schema_sql(url: str) -> list[str]:
    state = await urls.state_from_url(url)
    try:
        return await state.schema_sql()
    finally:
        await state.close()


class ApplySchema(Operation):
    """Create or upgrade queuert's tables on the queuert database with the state
    adapter's migration (a no-op on other databases). Reversing it keeps the
    tables: they hold the jobs, and dropping them is a decision for the adapter's
    own tools, not an unapplied migration."""

    reduces_to_sql = True  # sqlmigrate prints the adapter's DDL
    reversible = True

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass  # no Django model describes queuert's tables

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        conn = schema_editor.connection
        cfg = config()
        if conn.alias != cfg.database:
            return
        url = database.state_url(conn.alias, cfg=cfg)
        if schema_editor.collect_sql:
            for statement in run_async(lambda: _schema_sql(url)):
                schema_editor.execute(statement, params=None)
            return
        run_async(lambda: _migrate(url))

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        pass

    def describe(self) -> str:
        return "Create or upgrade queuert's tables"

    @property
    def migration_name_fragment(self) -> str:
        return "queuert_schema"
