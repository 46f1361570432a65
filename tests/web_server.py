"""The web app as a real HTTP server in another process, on the test database:
Django's development server as `make run` starts it, or gunicorn as the
Dockerfile does. For the tests of what only a server shows (connections per
thread, pools, replicas)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from config.embedded_services import free_port, port_answers
from tests.worker_process import ROOT, worker_env


def server_env(media_root: Path, clip_model: str, application_name: str, **extra) -> dict:
    """A web process's environment: the test database (its connections named
    `application_name` in pg_stat_activity), broker and storage, no rate limit
    unless `extra` sets one."""
    env = worker_env(media_root, clip_model, **{"API_RATE_LIMIT": "", **extra})
    env["DATABASE_URL"] += f"?application_name={application_name}"
    return env


def runserver_argv(port: int) -> list[str]:
    """Procfile.dev's web process (`make run`)."""
    return [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]


def gunicorn_argv(port: int, workers: int, threads: int) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
        *("--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)),
    ]


@contextmanager
def serving(argv_for_port, env: dict, log: Path, timeout: float = 60) -> Iterator[int]:
    """Start the server, wait until it answers, yield its port; stop it after."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(argv_for_port(port), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exchange(port: int, method: str, path: str, headers: dict, body: str | None, timeout: float):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def request(port: int, method: str, path: str, key: str, body: dict | None = None, timeout: float = 60):
    """One API request on a connection of its own: (status, the JSON body)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, data = _exchange(port, method, path, headers, None if body is None else json.dumps(body), timeout)
    return status, json.loads(data or b"{}")


def fetch_text(port: int, path: str, timeout: float = 60) -> tuple[int, str]:
    status, data = _exchange(port, "GET", path, {}, None, timeout)
    return status, data.decode()


def own_connection(*, port: int | None = None, dbname: str | None = None, autocommit: bool = True):
    """A psycopg connection of the test's own to the suite's PostgreSQL (or the
    server on `port`), outside Django's connections and their pool; the test
    database unless `dbname` says otherwise."""
    import psycopg

    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"], port=port or db["PORT"], user=db["USER"], dbname=dbname or db["NAME"], autocommit=autocommit
    )
