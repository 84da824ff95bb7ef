"""Shared fixtures: a real PostgreSQL server for the distributed-study tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL server of ``scripts/postgres-dev.sh`` in its own folder on a free port: its URL,
    and the script's actions on it (``restart``, ``stop``, ``start``) for tests that take the server away."""

    SCRIPT = str(ROOT / "scripts" / "postgres-dev.sh")

    def __init__(self) -> None:
        self.env = {**os.environ, "MDM_PG_DIR": f"/tmp/mdm-energy-pg-test-{uuid.uuid4().hex[:8]}",
                    "MDM_PG_PORT": str(_free_port())}
        self.url = ""

    def run(self, action: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.SCRIPT, action], capture_output=True, text=True, env=self.env, timeout=600)

    def start(self) -> str:
        """Start the server (installing PostgreSQL if missing) and return its URL; skips the test when it can't."""
        try:
            proc = self.run("start")
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"no PostgreSQL server could be started: {exc}")
        if proc.returncode != 0:
            pytest.skip(f"no PostgreSQL server could be started: {proc.stderr.strip()[-400:]}")
        self.url = proc.stdout.strip().splitlines()[-1]
        return self.url

    def remove(self) -> None:
        subprocess.run([self.SCRIPT, "stop"], env=self.env, capture_output=True, timeout=120)
        shutil.rmtree(self.env["MDM_PG_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database URL: ``$MDM_ENERGY_TEST_POSTGRES`` (``.ci/run`` starts a server), else a server
    started here by ``scripts/postgres-dev.sh`` on a free port and stopped afterwards. Skipped, with the
    reason, only when no server can be started (or the ``psycopg`` driver is missing)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed (pip install '.[test]')")
    url = os.environ.get("MDM_ENERGY_TEST_POSTGRES")
    if url:
        yield url
        return
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def postgres_server():
    """A private PostgreSQL server (:class:`PostgresServer`) for one test, which may restart or stop it
    without disturbing the shared one; removed afterwards."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed (pip install '.[test]')")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
