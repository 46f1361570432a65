"""The least pgvector Stock Mind runs on (0.8: iterative index scans): the
embedded server has it, and an older one is refused by `migrate`'s checks, a
worker's start-up and /health/ready, with what to do about it."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from catalog import vector_engine
from catalog.vector_engine import MIN_PGVECTOR, pgvector_problem, pgvector_version

pytestmark = pytest.mark.django_db


def test_the_embedded_server_has_a_pgvector_recent_enough():
    assert pgvector_version() >= MIN_PGVECTOR
    assert pgvector_problem() is None
    call_command("check", "--database", "default")  # what `migrate` runs first


@pytest.mark.parametrize(
    ("installed", "available", "says"),
    [
        ((0, 6, 2), (0, 6, 2), "upgrade pgvector"),
        ((0, 6, 2), (0, 8, 1), "ALTER EXTENSION vector UPDATE"),
        (None, None, "has no pgvector extension"),
        (None, (0, 7, 4), "upgrade pgvector"),
    ],
)
def test_an_older_pgvector_is_refused_with_what_to_do(monkeypatch, client, installed, available, says):
    # Servers with these versions cannot be started here: their answers are given instead.
    monkeypatch.setattr(vector_engine, "installed_and_available", lambda: (installed, available))
    assert says in pgvector_problem()

    with pytest.raises(SystemCheckError, match=r"catalog\.E001"):
        call_command("check", "--database", "default")
    response = client.get("/health/ready")
    assert response.status_code == 503 and says in response.json()["checks"]["database"]["error"]

    from media_pipeline.worker import check_pgvector

    with pytest.raises(SystemExit):
        check_pgvector()


def test_a_database_before_its_first_migration_is_not_refused(monkeypatch):
    monkeypatch.setattr(vector_engine, "installed_and_available", lambda: (None, (0, 8, 1)))
    assert pgvector_problem() is None
