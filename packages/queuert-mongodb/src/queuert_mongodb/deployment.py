"""What the adapter needs from a deployment, read from the server's ``hello`` reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_WIRE_VERSION = 9
"""Wire protocol version of MongoDB 4.4, the oldest server the adapter is written for."""

REPLICA_SET_FIX = (
    "queuert needs multi-document transactions, which MongoDB offers on replica sets and "
    "sharded clusters only: start mongod with --replSet (for example --replSet rs0), run "
    "rs.initiate() once in mongosh (a single-member replica set is enough for development), "
    "and connect with ?replicaSet=rs0"
)


def deployment_problem(hello: Mapping[str, Any]) -> str | None:
    """Why a server answering ``hello`` cannot run the adapter, or ``None`` when it can."""
    if hello.get("msg") != "isdbgrid" and not hello.get("setName"):
        return f"the server is a standalone mongod; {REPLICA_SET_FIX}"
    wire = hello.get("maxWireVersion")
    if not isinstance(wire, int) or wire < MIN_WIRE_VERSION:
        return (
            f"the server speaks wire version {wire!r}; queuert-mongodb needs MongoDB 4.4 or "
            f"newer (wire version {MIN_WIRE_VERSION})"
        )
    return None
