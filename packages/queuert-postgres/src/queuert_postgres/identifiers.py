"""Validation and quoting of the schema, table prefix and channel prefix."""

from __future__ import annotations

import re

from queuert.errors import ConfigurationError

# Lower case only: a quoted mixed-case name would have to be quoted by every
# person who later queries the tables by hand.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
_PREFIX = re.compile(r"[a-z0-9_]*\Z")

# PostgreSQL silently truncates longer names (NAMEDATALEN - 1).
MAX_NAME_BYTES = 63


def validate_identifier(value: object, *, what: str) -> str:
    """Return ``value`` when it is a plain lower-case SQL identifier, else raise
    :class:`~queuert.errors.ConfigurationError` naming it."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigurationError(
            f"invalid PostgreSQL {what} {value!r}: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore"
        )
    if len(value) > MAX_NAME_BYTES:
        raise ConfigurationError(
            f"invalid PostgreSQL {what} {value!r}: longer than {MAX_NAME_BYTES} characters"
        )
    return value


def validate_prefix(value: object, *, what: str, longest_suffix: str) -> str:
    """Return ``value`` when it may prefix a name (may be empty, may start with a digit),
    and ``value + longest_suffix`` still fits a PostgreSQL name."""
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ConfigurationError(
            f"invalid PostgreSQL {what} {value!r}: use lower-case letters, digits and underscores"
        )
    if len(value) + len(longest_suffix) > MAX_NAME_BYTES:
        raise ConfigurationError(
            f"invalid PostgreSQL {what} {value!r}: {value + longest_suffix!r} would be longer "
            f"than {MAX_NAME_BYTES} characters"
        )
    return value


def quote(name: str) -> str:
    """Quote an already validated identifier."""
    return f'"{name}"'
