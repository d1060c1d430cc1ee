"""Throwaway PostgreSQL and Redis servers for integration and end-to-end tests.

Each server is started from the installed binaries on a free loopback port in a temporary directory, so a
test can stop it, stall it (SIGSTOP) or restart it on the same port and data directory. When
``FLAGD_TEST_DATABASE_URL`` / ``FLAGD_TEST_REDIS_URL`` are set, the suite uses those servers instead and the
fault-injection controls are unavailable (tests that need them skip).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class ServerStartError(RuntimeError):
    """A needed server binary is missing or the server did not start."""


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise ServerStartError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _find_pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise ServerStartError(f"{name} not found: apt-get install -y postgresql, or set FLAGD_TEST_DATABASE_URL")


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temp dir; ``url`` points at its ``postgres`` database."""

    port: int = field(default_factory=free_port)
    datadir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flagd-pg-")))
    user: str = "postgres"
    external_url: str | None = None
    _paused: bool = False

    @property
    def controllable(self) -> bool:
        return self.external_url is None

    @property
    def url(self) -> str:
        if self.external_url:
            return self.external_url
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{database}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    _find_pg_bin("initdb"),
                    "-D",
                    str(self.datadir / "data"),
                    "-U",
                    self.user,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    _find_pg_bin("pg_ctl"),
                    "-D",
                    str(self.datadir / "data"),
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(self.datadir / "log"),
                    "-o",
                    # fsync off is safe against a server crash (the kernel keeps what was written), so
                    # an ``immediate`` stop loses nothing; asynchronous commit is not: it answers before
                    # the WAL is written, and a crash then loses commits clients were told about.
                    f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c full_page_writes=off -c max_connections=200",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        wait_for_port(self.port)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate`` is a crash from the clients' point of view)."""
        if self._paused:
            self.resume()
        subprocess.run(
            _as_postgres(
                [_find_pg_bin("pg_ctl"), "-D", str(self.datadir / "data"), "-m", mode, "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def _postmaster_pid(self) -> int:
        return int((self.datadir / "data" / "postmaster.pid").read_text().split()[0])

    def pause(self) -> None:
        """Stall the postmaster and every backend: connections stay open but nothing answers."""
        pid = self._postmaster_pid()
        subprocess.run(["pkill", "-STOP", "-P", str(pid)], check=False)
        os.kill(pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        pid = self._postmaster_pid()
        os.kill(pid, signal.SIGCONT)
        subprocess.run(["pkill", "-CONT", "-P", str(pid)], check=False)
        self._paused = False

    def destroy(self) -> None:
        if self.controllable:
            self.stop()
            shutil.rmtree(self.datadir, ignore_errors=True)


@dataclass
class RedisServer:
    """A redis-server without persistence in a temp dir (``extra``: e.g. ``--replicaof``, cluster mode)."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flagd-redis-")))
    external_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def controllable(self) -> bool:
        return self.external_url is None

    @property
    def url(self) -> str:
        return self.external_url or f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerStartError(
                "redis-server not found: apt-get install -y redis-server, or set FLAGD_TEST_REDIS_URL"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "log"),
                "--enable-debug-command",
                "local",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Kill the server: its data is gone (no persistence), like a crashed cache node."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL: the external one from FLAGD_TEST_DATABASE_URL, or a throwaway cluster."""
    external = os.environ.get("FLAGD_TEST_DATABASE_URL")
    if external:
        yield PostgresServer(external_url=external)
        return
    server = PostgresServer()
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running Redis: the external one from FLAGD_TEST_REDIS_URL, or a throwaway server."""
    external = os.environ.get("FLAGD_TEST_REDIS_URL")
    if external:
        yield RedisServer(external_url=external)
        return
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
