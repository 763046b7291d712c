"""Terminal output of the demo: rich's live progress and tables when rich is
installed, plain lines otherwise (so queuert-core and queuert-sqlite alone run it)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Display:
    """Progress counters, messages and tables."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        except ImportError:
            self._rich: Any = None
            return
        self._rich = Console()
        self._progress = Progress(
            TextColumn("{task.description:>12}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed}"),
            console=self._rich,
        )

    def counter(self, name: str, total: int) -> Callable[[], None]:
        """A function that counts one more ``name`` towards ``total``."""
        self._counts[name] = 0
        self._totals[name] = total
        if self._rich is not None:
            task = self._progress.add_task(name, total=total)
            return lambda: self._progress.advance(task)

        def advance() -> None:
            self._counts[name] += 1
            print(f"{name:>12}: {self._counts[name]}/{self._totals[name]}", flush=True)

        return advance

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Show the counters live while the block runs."""
        if self._rich is None:
            yield
            return
        from rich.live import Live

        with Live(self._progress, console=self._rich, refresh_per_second=10):
            yield
        self._rich.print()

    def print(self, text: str) -> None:
        if self._rich is not None:
            self._rich.print(text)
        else:
            print(text.replace("[bold]", "").replace("[/]", ""))

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self._rich is not None:
            from rich.table import Table

            table = Table(title=title)
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            self._rich.print(table)
            return
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        print(f"\n{title}")
        for line in (columns, *rows):
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
