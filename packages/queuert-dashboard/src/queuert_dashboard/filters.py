"""Reading a page's query string: filters, page size, refresh interval, and the
query of the next page (the same filters after the page's cursor)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from queuert import ValidationError
from queuert.validation import show

PAGE_SIZE = 50
"""Rows per page of the chain and job lists."""


def param(request: Request, name: str) -> str | None:
    """The query parameter ``name``, stripped; ``None`` when absent or empty."""
    value = request.query_params.get(name, "").strip()
    return value or None


def refresh_seconds(request: Request) -> int | None:
    """Seconds between reloads asked for with ``?refresh=N`` (1..3600), if any.
    Raises ValidationError for anything else."""
    text = param(request, "refresh")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise ValidationError(f"refresh must be whole seconds within 1..3600, got {show(text)}")
    return int(text)


def page_size(request: Request) -> int:
    """``?limit=N``, or :data:`PAGE_SIZE`. Raises ValidationError for a non-integer
    (the range is the library's to check)."""
    text = param(request, "limit")
    if text is None:
        return PAGE_SIZE
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"limit must be an integer, got {show(text)}") from None


def time_param(request: Request, name: str) -> datetime | None:
    """``?name=`` as a time: ISO 8601 as a ``datetime-local`` input sends it
    (``2026-01-31T12:00``, read as UTC) or with an offset. Raises ValidationError
    for anything else."""
    text = param(request, name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{name} must be a date and time like 2026-01-31T12:00 (UTC), got {show(text)}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def chain_filters(request: Request) -> dict[str, Any]:
    """The keyword arguments of ``list_chains`` the chains page's form sets.
    Raises ValidationError for a bad time."""
    return {
        "status": param(request, "status"),
        "chain": param(request, "chain"),
        "queue": param(request, "queue"),
        "dedup_key": param(request, "dedup_key"),
        "created_after": time_param(request, "created_after"),
        "created_before": time_param(request, "created_before"),
    }


def job_filters(request: Request) -> dict[str, Any]:
    """The keyword arguments of ``list_jobs`` the jobs page's form sets. Raises
    ValidationError for a bad time."""
    return {
        "status": param(request, "status"),
        "queue": param(request, "queue"),
        "chain_id": param(request, "chain_id"),
        "created_after": time_param(request, "created_after"),
        "created_before": time_param(request, "created_before"),
    }


def form_values(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The filters as typed, to fill the form again (empty when absent)."""
    return {name: param(request, name) or "" for name in names}


def next_query(request: Request, cursor: str | None) -> str | None:
    """The query string of the next page: the same filters, after ``cursor``."""
    if cursor is None:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "after" and v}
    params["after"] = cursor
    return str(request.url.include_query_params(**params).query)
