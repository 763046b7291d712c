"""The getting-started example runs end to end."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from examples.first_chain import Sent, main


async def test_the_first_chain_runs_both_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "app.db"
    assert await main(database) == Sent(message="Welcome, Ada!")
    assert "Welcome, Ada!" in capsys.readouterr().out
    async with aiosqlite.connect(database) as conn:
        rows = list(await conn.execute_fetchall("SELECT name, welcomed FROM users"))
    assert [tuple(row) for row in rows] == [("Ada", 1)]
