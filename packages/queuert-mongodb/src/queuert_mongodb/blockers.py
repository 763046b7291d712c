"""Blocked jobs: the documents, queries and updates of jobs that wait on other
chains, and the plan of what a chain's end does to them.

An edge document ``{job_id, position, blocker_chain_id, chain_id}`` in
``{prefix}job_blockers`` records that job ``job_id`` (of chain ``chain_id``)
waits on chain ``blocker_chain_id``. The waiting job holds ``blockers_left``,
the number of distinct blocker chains not ended yet.

Race-freedom rests on write conflicts, MongoDB's only lock between
transactions. Making a job wait writes to the last job of every blocker chain
(setting ``dependents``) in the transaction that inserts the edges; every
operation ending a chain writes to that same document in a transaction and,
when it holds ``dependents``, updates the waiting jobs there too. Whichever of
the two transactions writes second conflicts and runs again, seeing the
other's commit: a chain ending while a job is made to wait on it is never
missed. Two chains ending at once in two transactions both write the waiting
job's document (its ``blockers_left`` is the counter), so the second conflicts
and runs again with the first's count: the job is unblocked exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from queuert.blockers import blocker_error
from queuert.records import JobError, JobStatus
from queuert_mongodb.documents import Document, error_document
from queuert_mongodb.updates import NOW, Pipeline, literal

MARK_DEPENDED: dict[str, Any] = {"$set": {"dependents": True}, "$inc": {"lock": 1}}
"""The write to a blocker chain's last job that makes a job wait on the chain: a
real change (``lock`` grows) so that it conflicts with a concurrent end of the
chain, and the flag telling that end to look for waiting jobs."""

_TERMINAL = frozenset(status.value for status in JobStatus if status.is_terminal)


def heads_query(chain_ids: Sequence[str]) -> dict[str, Any]:
    """The last jobs of these chains."""
    return {"chain_id": {"$in": list(chain_ids)}, "next_job_id": None}


def edge_documents(
    jobs: Sequence[tuple[str, str]], blocker_chain_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The edges of the jobs ``(job id, chain id)`` each waiting on
    ``blocker_chain_ids``, one per position."""
    return [
        {
            "job_id": job_id,
            "chain_id": chain_id,
            "position": position,
            "blocker_chain_id": blocker,
        }
        for job_id, chain_id in jobs
        for position, blocker in enumerate(blocker_chain_ids)
    ]


def waiting_fields(
    status: JobStatus, left: int, error: JobError | None, run_on_failure: bool
) -> dict[str, Any]:
    """Fields (as pipeline expressions) of a job created waiting on other chains, as
    :func:`queuert.blockers.initial_wait` decided: ``blocked``, ``pending`` or
    ``failed`` (then ended now)."""
    failed = status is JobStatus.FAILED
    return {
        "status": literal(status.value),
        "blockers_left": literal(left),
        "run_on_blocker_failure": literal(run_on_failure),
        "error": literal(error_document(error)),
        "completed_at": NOW if failed else None,
    }


def ended_chain(document: Document) -> tuple[str, str] | None:
    """``(chain id, status)`` when the written job ``document`` ends its chain and a
    job waits (or waited) on that chain; ``None`` otherwise."""
    if not document.get("dependents") or document.get("next_job_id") is not None:
        return None
    status = document.get("status")
    if status not in _TERMINAL:
        return None
    return str(document["chain_id"]), str(status)


def inherited(previous: Document) -> dict[str, Any]:
    """Fields (as pipeline expressions) a continuation takes over from the job
    ``previous`` it continues: the chain's ``dependents`` flag."""
    return {"dependents": literal(True)} if previous.get("dependents") else {}


def edges_of_query(chain_ids: Sequence[str]) -> dict[str, Any]:
    """The edges of jobs waiting on these chains."""
    return {"blocker_chain_id": {"$in": list(chain_ids)}}


def waiting_query(job_ids: Sequence[str]) -> dict[str, Any]:
    """Those of these jobs that still wait."""
    return {"_id": {"$in": list(job_ids)}, "status": JobStatus.BLOCKED.value}


WAITING_PROJECTION = {"chain_id": 1, "run_on_blocker_failure": 1, "dependents": 1}


@dataclass(frozen=True, slots=True)
class UnblockPlan:
    """What the ends of some chains do to the jobs waiting on them."""

    decrements: dict[int, list[str]] = field(default_factory=dict)
    """Jobs whose ``blockers_left`` drops by the key (``pending`` when it reaches 0)."""
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """Jobs failing because the chain (id, status) of the key did not complete."""
    ended: dict[str, str] = field(default_factory=dict)
    """Chains that end with those failures and have waiting jobs of their own, by id,
    with their status (``failed``): what to do next."""


def plan_unblocking(
    ended: Mapping[str, str], edges: Sequence[Document], waiting: Sequence[Document]
) -> UnblockPlan:
    """What the ends of the chains ``ended`` (status by chain id, in the order they
    ended) do to the jobs still waiting (``waiting``, documents with ``chain_id``,
    ``run_on_blocker_failure`` and ``dependents``) along ``edges``.

    A completed chain counts down each job waiting on it once, however many times
    the job names it; a failed or cancelled one fails the job with the error naming
    that chain, unless the job runs however (``run_on_blocker_failure``), for which
    it counts down like a completed one."""
    by_job: dict[str, list[str]] = {}
    for edge in edges:
        chains = by_job.setdefault(str(edge["job_id"]), [])
        chain_id = str(edge["blocker_chain_id"])
        if chain_id in ended and chain_id not in chains:
            chains.append(chain_id)
    order = {chain_id: index for index, chain_id in enumerate(ended)}
    plan = UnblockPlan()
    for job in waiting:
        chains = sorted(by_job.get(str(job["_id"]), []), key=order.__getitem__)
        if not chains:
            continue
        runs_however = bool(job.get("run_on_blocker_failure"))
        bad = [c for c in chains if ended[c] != JobStatus.COMPLETED.value]
        if bad and not runs_however:
            plan.failures.setdefault((bad[0], ended[bad[0]]), []).append(str(job["_id"]))
            if job.get("dependents"):
                plan.ended[str(job["chain_id"])] = JobStatus.FAILED.value
            continue
        plan.decrements.setdefault(len(chains), []).append(str(job["_id"]))
    return plan


def decrement_update(count: int) -> Pipeline:
    """Count down ``count`` ended blockers; the job is ``pending`` once none is left."""
    return [
        {
            "$set": {
                "status": {
                    "$cond": [
                        {"$lte": ["$blockers_left", count]},
                        literal(JobStatus.PENDING.value),
                        literal(JobStatus.BLOCKED.value),
                    ]
                },
                "blockers_left": {"$max": [0, {"$subtract": ["$blockers_left", count]}]},
                "updated_at": NOW,
            }
        }
    ]


def failure_update(chain_id: str, status: str) -> Pipeline:
    """Fail a waiting job because its blocker chain ``chain_id`` ended ``status``."""
    return [
        {
            "$set": {
                "status": literal(JobStatus.FAILED.value),
                "error": literal(error_document(blocker_error(chain_id, status))),
                "blockers_left": literal(0),
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def job_edges_query(job_id: str) -> dict[str, Any]:
    """The edges of one job (sorted by :data:`EDGE_SORT`)."""
    return {"job_id": job_id}


EDGE_SORT = [("position", 1)]


def dependents_query(chain_ids: Sequence[str]) -> dict[str, Any]:
    """Edges into these chains from jobs of other chains."""
    ids = list(chain_ids)
    return {"blocker_chain_id": {"$in": ids}, "chain_id": {"$nin": ids}}


def dependent_chain_ids(edges: Sequence[Document]) -> list[str]:
    """The distinct waiting chains of ``edges``, in id order."""
    return sorted({str(edge["chain_id"]) for edge in edges})


def edges_of_chains_query(chain_ids: Sequence[str]) -> dict[str, Any]:
    """The edges of jobs of these chains (deleted with them)."""
    return {"chain_id": {"$in": list(chain_ids)}}
