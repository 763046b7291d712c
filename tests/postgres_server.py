"""A private PostgreSQL cluster, for tests that stop, restart or disturb the server.

The cluster is made with the server's own ``initdb`` and run with ``pg_ctl`` on
a free port in a temporary directory, listening on 127.0.0.1 only (trust
authentication, user ``postgres``). PostgreSQL refuses to run as root, so when
the tests run as root the cluster belongs to the ``postgres`` OS user and every
server command runs as that user through ``runuser``.

Outside CI missing binaries skip the test with a one-line reason; with
``CI=true`` they fail it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.servers import missing_tool

_SERVER_USER = "postgres"
_START_TIMEOUT_S = 60


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir`` when
    it holds them (Debian's ``pg_config`` may belong to the client package only),
    else the newest ``/usr/lib/postgresql/*/bin``, else the ``PATH``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]
    ]
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """A throwaway cluster that can be stopped and started again on one port.

    The synchronous methods are for fixtures; a test that disturbs the server
    while its own code runs uses the ``a``-prefixed ones, which do not block the
    event loop.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam(_SERVER_USER)
            except KeyError:
                missing_tool(f"running as root needs an OS user {_SERVER_USER!r} for PostgreSQL")
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # user must reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="queuert-pg-"))
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        if self.user is not None:
            return ["runuser", "-u", self.user.pw_name, "--", *command]
        return command

    def _pg_ctl(self, *args: str) -> list[str]:
        return self._command(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-s", *args
        )

    def _run(self, command: list[str], timeout: float) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{command} failed ({done.returncode}):\n{done.stderr}{self.log_tail()}"
            )

    async def _arun(self, command: list[str], timeout: float) -> None:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(timeout):
                out, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"{command} failed ({process.returncode}):\n{out.decode()}")

    def init(self) -> None:
        """Create the cluster (``initdb``), configured for tests: TCP on 127.0.0.1
        only, no ``fsync`` (the tests crash the server, never the machine: an
        acknowledged commit survives, as the scenarios check)."""
        self._run(
            self._command(
                "initdb",
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ),
            timeout=120,
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "100",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        self._run(self._pg_ctl("-w", "-t", str(_START_TIMEOUT_S), "start"), _START_TIMEOUT_S + 10)

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``); nothing happens if it is down."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(self._pg_ctl("-w", "-m", "immediate", "stop"), 60)

    def ensure_started(self) -> None:
        """Start the server if a previous test left it stopped."""
        if not (self.datadir / "postmaster.pid").exists():
            self.start()

    async def astart(self) -> None:
        await self._arun(
            self._pg_ctl("-w", "-t", str(_START_TIMEOUT_S), "start"), _START_TIMEOUT_S + 10
        )

    async def astop(self, *, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session and shuts down cleanly,
        ``immediate`` is a crash."""
        await self._arun(self._pg_ctl("-w", "-m", mode, "stop"), 60)

    async def arestart(self, *, mode: str = "fast") -> None:
        await self.astop(mode=mode)
        await self.astart()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def private_postgres_cluster() -> PostgresCluster:
    """A new, initialised and started cluster (``destroy()`` it when done).
    Skips (fails under CI) when the server's binaries are missing."""
    bindir = find_bindir()
    if bindir is None:
        missing_tool("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing_tool("running PostgreSQL as root needs runuser")
    assert bindir is not None
    cluster = PostgresCluster(bindir)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
