"""The documentation site's code cannot drift: every Python or configuration sample
is included (``--8<--``) from a file that a test runs or checks, and the shell
commands it shows name modules that exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# Fences and includes may be indented (inside a list item).
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```$", re.M | re.S)
INCLUDE = re.compile(r'^[ \t]*--8<-- "([^":]+)(?::([\w-]+))?"$', re.M)


def includes(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in INCLUDE.finditer(text)]


def test_the_site_has_pages() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "getting-started.md", "comparison.md"} <= names


def test_every_page_is_in_the_navigation() -> None:
    # nav entries are "- Title: page.md" lines of mkdocs.yml
    nav = set(re.findall(r"^\s*-.*?([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = [p.relative_to(DOCS).as_posix() for p in PAGES]
    assert [page for page in pages if page not in nav] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_code_samples_are_included_from_files(page: Path) -> None:
    for language, body in FENCE.findall(page.read_text()):
        if language == "sh":
            continue  # commands, checked below
        lines = [line for line in body.splitlines() if line.strip()]
        assert len(lines) == 1 and INCLUDE.match(lines[0]), (
            f"{page.name}: a {language or 'plain'} sample written inline instead of "
            f"included from a tested file: {body[:80]!r}"
        )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_included_files_and_sections_exist(page: Path) -> None:
    for path, section in includes(page.read_text()):
        source = ROOT / path
        assert source.is_file(), f"{page.name} includes missing {path}"
        if section is not None:
            text = source.read_text()
            assert f"--8<-- [start:{section}]" in text and f"--8<-- [end:{section}]" in text


def test_included_code_is_run_by_a_test() -> None:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    for page in PAGES:
        for path, _ in includes(page.read_text()):
            if path.startswith("tests/") or not path.endswith(".py"):
                continue  # a test itself, or a file a test checks by name
            module = path.removesuffix(".py").replace("/", ".")
            parent, _, name = module.rpartition(".")
            imports = (f"from {module} import", f"import {module}", f"from {parent} import {name}")
            assert any(form in tests for form in imports), (
                f"{path} is shown in {page.name} but no test imports it"
            )
        for path, _ in includes(page.read_text()):
            if not path.endswith(".py") and path.startswith("examples/"):
                assert Path(path).name in tests, f"no test checks {path}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_shell_commands_name_existing_modules(page: Path) -> None:
    for language, body in FENCE.findall(page.read_text()):
        if language != "sh":
            continue
        for module in re.findall(r"python -m ([\w.]+)", body):
            assert hasattr(importlib.import_module(module), "main"), module
        for module, attribute in re.findall(r"uvicorn ([\w.]+):(\w+)", body):
            assert hasattr(importlib.import_module(module), attribute), (module, attribute)
