"""Read replicas (DATABASE_REPLICA_URLS, config/replicas.py), against a real
streaming standby of the suite's PostgreSQL made with `pg_basebackup -R`:
searches are served by the standby, and go on answering from the primary
when it stops; every other read and every write stays on the primary."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from catalog.models import Product
from config.embedded_services import Postgres
from config.replicas import ReplicaRouter, search_read
from tests.conftest import NEAR_QUERY, wait_for
from tests.web_server import fetch_text, own_connection, request, runserver_argv, server_env, serving

TEXT_URL = "/api/v1/search/text"
APPLICATION = "stockmind-replica-test"


def test_the_router_sends_only_a_searchs_reads_to_its_database():
    router = ReplicaRouter()
    assert router.db_for_read(Product) == DEFAULT_DB_ALIAS  # outside a search: the primary's own writes
    assert search_read(lambda: router.db_for_read(Product)) == DEFAULT_DB_ALIAS  # no replica configured
    assert router.db_for_write(Product) == DEFAULT_DB_ALIAS
    assert router.allow_migrate("replica_1", "catalog") is False


@pytest.fixture
def standby(tmp_path):
    """A streaming standby of the test database's server; its port."""
    server = Postgres(tmp_path / "standby")
    running = server.start_standby(int(settings.DATABASES["default"]["PORT"]))
    yield running.port
    server.stop()


def searches_by_database(port: int) -> dict[str, float]:
    """What the server's /metrics count of searches says, by database."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = fetch_text(port, "/metrics")
    assert status == 200
    return {
        sample.labels["database"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "stockmind_search_reads_total"
    }


def test_searches_are_served_by_the_standby_and_survive_it_stopping(searchable, standby, tiny_model, tmp_path):
    with own_connection(port=standby) as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        # The standby has replayed the tenant's committed rows.
        wait_for(
            lambda: replica.execute("SELECT count(*) FROM catalog_embedding").fetchone() == (6,),
            timeout=30,
            what="the standby to replay the tenant",
        )
    db = settings.DATABASES["default"]
    replica_url = f"postgres://{db['USER']}@127.0.0.1:{standby}/{db['NAME']}?application_name={APPLICATION}"
    env = server_env(tmp_path / "media", str(tiny_model), APPLICATION, DATABASE_REPLICA_URLS=replica_url)
    log = tmp_path / "runserver.log"
    with serving(runserver_argv, env, log) as port:
        for _ in range(3):
            status, body = request(port, "POST", TEXT_URL, searchable, {"query": NEAR_QUERY, "k": 3})
            assert status == 200 and len(body["results"]) == 3, body
        found = [result["product"]["sku"] for result in body["results"]]
        assert searches_by_database(port) == {"replica_1": 3.0}
        with own_connection(port=standby) as replica:  # the server's connection is to the standby
            row = replica.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION])
            assert row.fetchone()[0] >= 1  # type: ignore[index]

        Postgres(tmp_path / "standby").stop()
        for _ in range(4):
            status, body = request(port, "POST", TEXT_URL, searchable, {"query": NEAR_QUERY, "k": 3})
            assert status == 200, body
            assert [result["product"]["sku"] for result in body["results"]] == found
        assert searches_by_database(port) == {"replica_1": 3.0, "default": 4.0}
        # Only the first search after the stop tried the replica: it is left alone for a while.
        assert log.read_text().count("replica replica_1 failed") == 1
