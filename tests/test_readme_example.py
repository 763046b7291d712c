"""The README's "A chain in code" is ``examples/chain_in_code.py``, and it runs."""

from __future__ import annotations

import re
from pathlib import Path

from examples.chain_in_code import Done, main

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A chain in code", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has no python block"
    source = (ROOT / "examples" / "chain_in_code.py").read_text(encoding="utf-8")
    assert match.group(1) in source, "README's block is not a part of examples/chain_in_code.py"
    assert len(match.group(1)) > len(source) // 2


async def test_the_example_runs_its_chain(tmp_path: Path) -> None:
    done = await main(tmp_path / "app.db")
    assert isinstance(done, Done) and done.url.startswith("https://cdn.example.com/")
