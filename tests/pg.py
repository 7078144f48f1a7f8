"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory.

Fixtures (import them into a test module: ``from tests.pg import _postgres, _pg_url``):

``postgres``  one server per session on a free loopback port (trust auth, fsync off);
``pg_url``    a fresh, empty database on it, as a ``postgresql+psycopg://`` URL.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user that Debian's package creates. A missing PostgreSQL is a failure, not a skip:
``bash tests/run`` installs it (tests/debian-packages.txt).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = ("PostgreSQL is not installed: run the suite with `bash tests/run`, which installs "
                "tests/debian-packages.txt (or apt-get install postgresql)")


def pg_bin(tool: str) -> str:
    """Path of a PostgreSQL server binary (Debian keeps them off PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not candidates:
        pytest.fail(INSTALL_HINT)
    return candidates[-1]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in its own directory (see the module docstring)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="orgsync-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root needs the 'postgres' user; " + INSTALL_HINT)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                              cwd=self.root)

    def start(self) -> None:
        """initdb, then start and wait until it accepts connections."""
        r = self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
        if r.returncode != 0:
            pytest.fail(f"initdb failed: {r.stderr or r.stdout}")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        r = self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                      str(self.root / "server.log"), "-w", "-t", "60", "start")
        if r.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") \
                if (self.root / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {r.stderr or r.stdout}\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg
        from psycopg import sql

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


@pytest.fixture(name="postgres", scope="session")
def _postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="pg_url")
def _pg_url(postgres: PostgresServer) -> str:
    """A fresh database on the session's server."""
    return postgres.create_database()
