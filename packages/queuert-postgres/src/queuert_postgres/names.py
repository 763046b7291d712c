"""The qualified names of queuert's tables and indexes for one schema and table prefix."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from queuert_postgres.identifiers import quote, validate_identifier, validate_prefix

# The longest name derived from the prefix; the prefix is validated against it.
_LONGEST_SUFFIX = "jobs_chain_position_key"


@dataclass(frozen=True, slots=True)
class Names:
    """Validated schema and table prefix, and the SQL names built from them."""

    schema: str
    table_prefix: str

    @classmethod
    def create(cls, schema: str, table_prefix: str) -> Names:
        """Raises :class:`~queuert.errors.ConfigurationError` naming an invalid value."""
        validate_identifier(schema, what="schema")
        validate_prefix(table_prefix, what="table prefix", longest_suffix=_LONGEST_SUFFIX)
        return cls(schema=schema, table_prefix=table_prefix)

    def name(self, suffix: str) -> str:
        """Unqualified, quoted name of a table or index."""
        return quote(self.table_prefix + suffix)

    def table(self, suffix: str) -> str:
        """Schema-qualified, quoted name of a table."""
        return f"{quote(self.schema)}.{self.name(suffix)}"

    @property
    def jobs(self) -> str:
        return self.table("jobs")

    @property
    def migrations(self) -> str:
        return self.table("migrations")

    @property
    def migration_lock_key(self) -> int:
        """The advisory lock key that serialises migrations of this schema and prefix
        (and only those, so unrelated schemas migrate concurrently)."""
        digest = hashlib.blake2b(
            f"queuert-migrate:{self.schema}:{self.table_prefix}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)
