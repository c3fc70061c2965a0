"""A throwaway PostgreSQL cluster (initdb / pg_ctl on a free port) the reliability tests
may crash with ``pg_ctl stop -m immediate``; never the machine's shared server.

As root, the server binaries refuse to run, so they run as the ``postgres`` user through
``runuser``; the cluster lives in its own temporary folder, removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from stripe_emulator.testing import free_port


def server_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, else the PATH's."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for folder in reversed(candidates):
        if all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "pg_dump")):
            return Path(folder)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl") and shutil.which("pg_dump"):
        return Path(found).resolve().parent
    return None


def unavailable_reason() -> str | None:
    """Why a throwaway cluster cannot be made here (None: it can)."""
    if server_bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, pg_dump) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
        if not shutil.which("runuser"):
            return "running as root and runuser is missing"
    return None


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="md-reliability-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as_postgres = os.geteuid() == 0

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check)

    def init(self) -> None:
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=32MB -c fsync=off"
        )  # fsync only matters when the machine crashes, not the server
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.dsn(), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"the throwaway PostgreSQL did not start: {self.log.read_text()}")

    def crash(self) -> None:
        """Immediate shutdown: every backend is killed, no checkpoint; the next start
        replays the WAL (crash recovery)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def copy_database(self, source_url: str, source_name: str, target_name: str) -> None:
        """Schema and rows of ``source_name`` on the server of ``source_url`` (the suite's
        test database) into a new database here, with pg_dump / psql."""
        src = urlsplit(source_url)
        env = {**os.environ, "PGPASSWORD": src.password or ""}
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{target_name}"')
        dump = subprocess.run(
            [
                str(self.bin / "pg_dump"), "--no-owner", "--no-privileges",
                "-h", src.hostname or "127.0.0.1", "-p", str(src.port or 5432),
                "-U", src.username or "postgres", source_name,
            ],
            capture_output=True, env=env, check=True,
        )  # fmt: skip
        psql = shutil.which("psql") or str(self.bin / "psql")
        subprocess.run(
            [psql, "-q", "-v", "ON_ERROR_STOP=1", self.dsn(target_name)],
            input=dump.stdout, capture_output=True, check=True,
        )  # fmt: skip
