"""What the adapter requires of a deployment, from the server's hello reply (no server
needed)."""

from __future__ import annotations

from queuert_mongodb.deployment import deployment_problem


def test_replica_set_member_of_4_4_is_accepted() -> None:
    assert deployment_problem({"setName": "rs0", "maxWireVersion": 9}) is None
    assert deployment_problem({"setName": "rs0", "maxWireVersion": 25}) is None


def test_mongos_is_accepted() -> None:
    assert deployment_problem({"msg": "isdbgrid", "maxWireVersion": 13}) is None


def test_standalone_is_refused_naming_the_fix() -> None:
    problem = deployment_problem({"isWritablePrimary": True, "maxWireVersion": 21})
    assert problem is not None
    assert "standalone" in problem and "--replSet" in problem and "rs.initiate()" in problem


def test_servers_older_than_4_4_are_refused() -> None:
    problem = deployment_problem({"setName": "rs0", "maxWireVersion": 8})
    assert problem is not None and "4.4" in problem
    assert deployment_problem({"setName": "rs0"}) is not None
