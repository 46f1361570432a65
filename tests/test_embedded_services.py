"""The embedded PostgreSQL and Redis: started on free ports, reused when
running, and found by the settings unless the environment says otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from config import embedded_services

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("services")
    first = embedded_services.start(data_dir)
    yield data_dir, first
    embedded_services.stop(data_dir)


def test_start_runs_postgres_with_pgvector_and_redis(services):
    data_dir, _ = services
    env = embedded_services.read_env_file(data_dir / "services.env")
    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        assert conn.execute("SELECT '[1,2]'::vector <=> '[2,4]'::vector").fetchone()[0] == pytest.approx(0)
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()
    assert env["DJANGO_SECRET_KEY"]


def test_the_server_is_postgresql_18_with_pgvector_0_8_and_pgvectorscale(services):
    data_dir, _ = services
    env = embedded_services.read_env_file(data_dir / "services.env")
    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18.")
        available = dict(
            conn.execute(
                "SELECT name, default_version FROM pg_available_extensions WHERE name IN ('vector', 'vectorscale')"
            ).fetchall()
        )
    assert tuple(int(n) for n in available["vector"].split(".")[:2]) >= (0, 8)
    assert "vectorscale" in available


def test_the_server_gets_a_quarter_of_memory_for_shared_buffers_not_128_mb(services, monkeypatch):
    data_dir, _ = services
    env = embedded_services.read_env_file(data_dir / "services.env")
    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        shown = conn.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
        megabytes = shown.fetchone()[0]
    if "POSTGRES_SHARED_BUFFERS" not in os.environ:
        assert megabytes == min(embedded_services.SHARED_BUFFERS_MAX_MB, max(128, embedded_services.memory_mb() // 4))
    monkeypatch.setenv("POSTGRES_SHARED_BUFFERS", "256MB")
    assert embedded_services.shared_buffers() == "256MB"
    monkeypatch.setenv("POSTGRES_SHARED_BUFFERS", "256MB -c fsync=on")  # it reaches pg_ctl's command line
    with pytest.raises(SystemExit, match="a size such as 512MB"):
        embedded_services.shared_buffers()


def test_a_data_directory_of_an_older_postgresql_is_moved_aside_not_started(tmp_path, capsys):
    old = tmp_path / "pg"
    old.mkdir()
    (old / "PG_VERSION").write_text("16\n")
    (old / "base").mkdir()
    postgres = embedded_services.Postgres(tmp_path)

    aside = postgres.retire_incompatible()

    assert aside == tmp_path / "pg-16.old" and (aside / "PG_VERSION").read_text() == "16\n"
    assert not old.exists()  # a new cluster is made there at the next start
    message = capsys.readouterr().err
    assert "PostgreSQL 16" in message and "pg-16.old" in message and "make demo" in message
    assert postgres.retire_incompatible() is None  # nothing left to move


def test_second_start_reuses_what_runs(services):
    data_dir, _ = services
    env_before = (data_dir / "services.env").read_text()
    second = embedded_services.start(data_dir)
    assert all("reused" in state for state in second.values())
    assert (data_dir / "services.env").read_text() == env_before


def test_status_reports_both(services):
    data_dir, _ = services
    assert all(state.startswith(("postgres://", "redis://")) for state in embedded_services.status(data_dir).values())


def settings_value(expression: str, **env) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"}}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    return (result.stdout + result.stderr).strip()


def test_settings_read_the_env_file_but_the_environment_wins(services):
    data_dir, _ = services
    env_file = str(data_dir / "services.env")
    port = embedded_services.read_env_file(data_dir / "services.env")["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    assert settings_value("settings.DATABASES['default']['PORT']", STOCKMIND_SERVICES_ENV=env_file) == port
    overridden = settings_value(
        "settings.DATABASES['default']['PORT'], settings.REDIS_URL",
        STOCKMIND_SERVICES_ENV=env_file,
        DATABASE_URL="postgres://u@db.example:6543/x",
        REDIS_URL="redis://cache.example:6380/1",
    )
    assert overridden == "6543 redis://cache.example:6380/1"


def test_secret_key_is_required_outside_debug(tmp_path):
    missing = str(tmp_path / "none.env")
    output = settings_value("settings.DEBUG", STOCKMIND_SERVICES_ENV=missing)
    assert "ImproperlyConfigured" in output and "DJANGO_SECRET_KEY" in output
    assert settings_value("settings.DEBUG", STOCKMIND_SERVICES_ENV=missing, DJANGO_DEBUG="1") == "True"
    assert settings_value("settings.DEBUG", STOCKMIND_SERVICES_ENV=missing, DJANGO_SECRET_KEY="x" * 50) == "False"


def test_bad_setting_value_fails_at_start_up(tmp_path):
    output = settings_value(
        "1", STOCKMIND_SERVICES_ENV=str(tmp_path / "none.env"), DJANGO_SECRET_KEY="x" * 50, MAX_UPLOAD_BYTES="-5"
    )
    assert "ImproperlyConfigured" in output and "MAX_UPLOAD_BYTES" in output
