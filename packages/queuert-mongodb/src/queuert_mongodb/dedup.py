"""Deduplicated chain starts: the documents of ``{prefix}job_dedup``.

A key is one document whose ``_id`` is ``{chain_name, key}`` (unique by
construction) holding the chain that last took it (``chain_id``) and when
(``taken_at``, the server's time). A start upserts the document in the
transaction that inserts the chain's first job, keeping an existing holder;
when another chain holds the key the start checks whether it keeps it (in the
key's scope) and otherwise takes it over with a write to the same document.
Two transactions taking one key both write its document, so the second
conflicts and runs again, then sees the first one's chain: never two chains for
one key, in any number of processes.
"""

from __future__ import annotations

from typing import Any

from queuert.records import DedupKey, DedupScope, JobStatus
from queuert_mongodb.documents import Document
from queuert_mongodb.updates import NOW, Pipeline, literal

_ENDED = [s.value for s in JobStatus if s.is_terminal]


def key_id(chain_name: str, key: str) -> dict[str, str]:
    """The ``_id`` of a key (a document: its fields in this order)."""
    return {"chain_name": chain_name, "key": key}


def take_if_free(chain_id: str) -> Pipeline:
    """Upsert pipeline: the key for ``chain_id`` when nobody holds it; an existing
    holder is kept (the document is then left unchanged)."""
    return [
        {
            "$set": {
                "chain_id": {"$ifNull": ["$chain_id", literal(chain_id)]},
                "taken_at": {"$ifNull": ["$taken_at", NOW]},
            }
        }
    ]


def take_over(chain_id: str) -> Pipeline:
    """Pipeline giving the key to ``chain_id`` now."""
    return [{"$set": {"chain_id": literal(chain_id), "taken_at": NOW}}]


def holder_head_query(holder: str, request: DedupKey) -> dict[str, Any]:
    """The holder chain's last job while the chain keeps the key by ``request``'s
    scope as far as its status goes: not ended for ``incomplete``; existing for
    ``any`` (a deleted chain holds no key)."""
    query: dict[str, Any] = {"chain_id": holder, "next_job_id": None}
    if request.scope is DedupScope.INCOMPLETE:
        query["status"] = {"$nin": _ENDED}
    return query


def within_window_query(chain_name: str, key: str, window_ms: int) -> dict[str, Any]:
    """The key's document while it was taken less than ``window_ms`` ago by the
    server's clock."""
    return {
        "_id": key_id(chain_name, key),
        "$expr": {"$gt": ["$taken_at", {"$subtract": [NOW, window_ms]}]},
    }


def needs_window_check(request: DedupKey) -> bool:
    return request.scope is DedupScope.ANY and request.window_ms is not None


def holder_of(document: Document | None) -> str | None:
    return None if document is None else document.get("chain_id")


def dedup_fields(key: str) -> dict[str, Any]:
    """The field of a chain's first job recording its key."""
    return {"dedup_key": literal(key)}
