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
    env = {**os.environ, "MDM_PG_DIR": f"/tmp/mdm-energy-pg-test-{uuid.uuid4().hex[:8]}", "MDM_PG_PORT": str(_free_port())}
    script = str(ROOT / "scripts" / "postgres-dev.sh")
    try:
        proc = subprocess.run([script, "start"], capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"no PostgreSQL server could be started: {proc.stderr.strip()[-400:]}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(env["MDM_PG_DIR"], ignore_errors=True)
