"""The demo's closing tables name each job's queue, entry queue included."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import image_pipeline


async def test_the_demo_tables_show_queue_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain-text output (no live display), so that no cell is cut to the terminal width.
    monkeypatch.setattr(image_pipeline.display, "_rich", None)
    await image_pipeline.main(2, tmp_path / "demo.db")
    out = capsys.readouterr().out
    jobs = out[out.index("jobs (app.list_jobs)") :]
    rows = [line for line in jobs.splitlines()[2:] if line.startswith("…")]
    assert len(rows) == 4  # two chains of two jobs
    assert sum(f" {image_pipeline.image_chain.name} " in row for row in rows) == 2
    assert sum(f" {image_pipeline.distribute.name} " in row for row in rows) == 2
    assert "(entry)" not in out
