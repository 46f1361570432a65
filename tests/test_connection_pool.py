"""Pooled database connections (Django's psycopg pool, DATABASE_POOL_*): a
burst of requests waits for a pooled connection instead of opening one per
thread until PostgreSQL refuses ("too many clients already"), for the
development server of `make run` and for gunicorn's threads alike."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.conf import settings

from tests.conftest import NEAR_QUERY
from tests.web_server import gunicorn_argv, own_connection, request, runserver_argv, server_env, serving

CLIENTS = 8
REQUESTS_PER_CLIENT = 250
TEXT_URL = "/api/v1/search/text"
PRODUCTS_URL = "/api/v1/products/"


def search(port: int, key: str, query: str, **fields) -> tuple[int, dict]:
    return request(port, "POST", TEXT_URL, key, {"query": query, **fields})


def test_settings_pool_every_database_connection():
    database = settings.DATABASES["default"]
    assert database["OPTIONS"]["pool"]["max_size"] == settings.DATABASE_POOL_MAX_SIZE
    assert database["CONN_MAX_AGE"] == 0  # Django refuses persistent connections with a pool


def monitor() -> psycopg.Connection:
    """A connection of the test's own, outside any transaction: pg_stat_activity
    read inside one stays as it was when the transaction first read it."""
    return own_connection(dbname="postgres")


def connections_of(conn: psycopg.Connection, application_name: str, *, waiting_on_a_lock: bool = False) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    if waiting_on_a_lock:
        sql += " AND wait_event_type = 'Lock'"
    row = conn.execute(sql, [application_name]).fetchone()
    return int(row[0]) if row else 0


class ConnectionWatch:
    """The most connections one application name held at once, sampled from
    pg_stat_activity every few milliseconds over a connection of its own."""

    def __init__(self, application_name: str):
        self.application_name = application_name
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with monitor() as conn:
            while not self._stop.is_set():
                self.most = max(self.most, connections_of(conn, self.application_name))
                time.sleep(0.02)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def burst(port: int, key: str) -> Counter:
    """CLIENTS clients, each sending REQUESTS_PER_CLIENT requests one after
    another (a text search, then three product listings, and so on, to spare
    the suite's time): answers by status."""

    def client(n: int) -> Counter:
        statuses: Counter = Counter()
        for i in range(REQUESTS_PER_CLIENT):
            if i % 4:
                status, _ = request(port, "GET", PRODUCTS_URL, key)
            else:
                status, _ = search(port, key, f"query {n} {i % 7}", min_score=0)
            statuses[status] += 1
        return statuses

    with ThreadPoolExecutor(CLIENTS) as pool:
        return sum(pool.map(client, range(CLIENTS)), Counter())


def assert_answers_normally(port: int, key: str) -> None:
    status, body = search(port, key, NEAR_QUERY, k=3)
    assert status == 200, body
    assert len(body["results"]) == 3 and all(result["score"] > 0.9 for result in body["results"]), body


@pytest.mark.parametrize(
    ("server", "processes", "pool_size"),
    [
        # `make run`'s development server: a thread per connection, as many as clients send.
        ("runserver", 1, 4),
        # The Dockerfile's gunicorn: more threads per process than pooled connections.
        ("gunicorn", 2, 3),
    ],
)
def test_a_burst_of_searches_stays_within_the_pool(searchable, tiny_model, tmp_path, server, processes, pool_size):
    name = f"stockmind-pool-{server}"
    env = server_env(tmp_path / "media", str(tiny_model), name, DATABASE_POOL_MAX_SIZE=str(pool_size))
    argv = runserver_argv if server == "runserver" else lambda port: gunicorn_argv(port, processes, 8)
    with serving(argv, env, tmp_path / f"{server}.log") as port, ConnectionWatch(name) as watch:
        statuses = burst(port, searchable)
        assert statuses == Counter({200: CLIENTS * REQUESTS_PER_CLIENT}), statuses
        assert_answers_normally(port, searchable)
    assert 1 <= watch.most <= processes * pool_size, watch.most


def test_a_request_that_waits_too_long_for_a_connection_is_a_503(searchable, tiny_model, tmp_path):
    """With the pool's only connection held by a request stuck on a lock, the
    next request gives up after DATABASE_POOL_TIMEOUT with a 503 that says
    to retry; both answer normally once the lock is gone."""
    name = "stockmind-pool-timeout"
    env = server_env(tmp_path / "media", str(tiny_model), name, DATABASE_POOL_MAX_SIZE="1", DATABASE_POOL_TIMEOUT="1")
    with serving(runserver_argv, env, tmp_path / "runserver.log") as port, monitor() as watch:
        assert_answers_normally(port, searchable)
        with own_connection(autocommit=False) as locker:
            locker.execute("LOCK TABLE catalog_apikey IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as pool:
                stuck = pool.submit(search, port, searchable, "stuck")
                deadline = time.monotonic() + 30
                while connections_of(watch, name, waiting_on_a_lock=True) != 1:
                    assert time.monotonic() < deadline, "the first request never reached the lock"
                    time.sleep(0.05)
                status, body = search(port, searchable, "second")
                assert status == 503, body
                assert body["error"]["code"] == "service_unavailable"
                locker.rollback()  # the lock goes
                assert stuck.result(timeout=30)[0] == 200
        assert_answers_normally(port, searchable)
