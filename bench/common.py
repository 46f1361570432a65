"""What every benchmark shares: the throwaway database, the ViT-B/32-shaped
model, medians and percentiles, and tables that print to the terminal and are
collected by `make bench` (bench/run_all.py) into docs/BENCHMARKS.md.

A script reports through `emit(Table(...))`. Run alone it only prints; under
bench/run_all.py (which sets BENCH_RESULTS) each table is also appended, as
JSON, to the file that names it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

BENCH_DB = "stockmind_bench"
SERVICES_ENV = ROOT / ".data" / "services.env"
MODEL_DIR = ROOT / ".data" / "models" / "clip-vit-b-32"


def read_services_env() -> None:
    """DATABASE_URL and REDIS_URL of the demo's embedded services (`make services`)."""
    import environ

    if not SERVICES_ENV.exists():
        sys.exit("No .data/services.env: run `make services` first.")
    environ.Env.read_env(SERVICES_ENV, overwrite=False)


def use_bench_database(name: str = BENCH_DB) -> str:
    """Drop and create the throwaway database `name` beside the demo's and point
    DATABASE_URL at it (before django.setup()); returns that URL."""
    import psycopg

    read_services_env()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("No DATABASE_URL: run `make services` first.")
    base = url.replace("postgres://", "postgresql://").rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{base}/{name}"
    return os.environ["DATABASE_URL"]


def built_model(directory: Path, size: str) -> Path:
    """The CLIP of `size` (`build_clip_model --size`) with random weights,
    built once under `directory`."""
    if not (directory / "model.safetensors").exists():
        import subprocess

        # Its own process: the calling script sets up Django only after
        # choosing its database and media directory.
        subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "manage.py", "build_clip_model", str(directory), "--size", size],
            cwd=ROOT,
            env={**os.environ, "DJANGO_DEBUG": "1"},
            check=True,
        )
    return directory


def vit_b_32() -> Path:
    """The ViT-B/32-shaped CLIP with random weights: speed does not depend on
    the values of the weights."""
    return built_model(MODEL_DIR, "vit-b-32")


def run_scripts(scripts: list[tuple[str, list[str], list[str]]], quick: bool, only: list[str] | None):
    """Runs each (script, arguments, arguments with --quick) of bench/ as its
    own process, one after another; returns the tables they emitted, each
    script's run time in seconds, and the failures."""
    import subprocess
    import tempfile
    import time

    tables: list[dict] = []
    timings: list[tuple[str, float]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        for script, full, quick_args in scripts:
            if only and script not in only:
                continue
            print(f"\n=== bench/{script} ===", flush=True)
            began = time.monotonic()
            status = subprocess.call(  # noqa: S603 - our own interpreter and scripts
                [sys.executable, str(ROOT / "bench" / script), *(quick_args if quick else full)],
                cwd=ROOT,
                env={**os.environ, "BENCH_RESULTS": str(results)},
            )
            timings.append((script, time.monotonic() - began))
            if status:
                failures.append(f"bench/{script} exited with {status}")
        if results.exists():
            tables = [json.loads(line) for line in results.read_text().splitlines()]
    return tables, timings, failures


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q))


@dataclass
class Table:
    """One result table. `rows` hold values already formatted or numbers;
    `target` and `verdict` say what the figure is held to, where it is."""

    key: str  # which section of BENCHMARKS.md: ingest, fidelity, video, vector, api, memory
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *values) -> None:
        self.rows.append(list(values))

    def cells(self) -> list[list[str]]:
        return [[_format(value) for value in row] for row in self.rows]

    def text(self) -> str:
        cells = [self.columns, *self.cells()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title, ""]
        for n, row in enumerate(cells):
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.cells())
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def verdict(value: float, target: float, *, at_least: bool) -> str:
    """'met' or 'missed by N%' for a figure against its target."""
    ok = value >= target if at_least else value <= target
    if ok:
        return "met"
    gap = (target - value) / target if at_least else (value - target) / target
    return f"missed by {gap:.0%}"


def emit(table: Table) -> None:
    print("\n" + table.text(), flush=True)
    results = os.environ.get("BENCH_RESULTS")
    if results:
        with open(results, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(table) | {"markdown": table.markdown()}) + "\n")


def in_threads(items: Sequence, work) -> float:
    """`work(item)` for every item, each in a thread of its own, all at once;
    returns the seconds until the last one finished."""
    import threading
    import time

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


class _Service:
    """A process of ours started for a benchmark, its output in a log file."""

    child_label = "child"  # what its pool's children are called in peak_rss_mb()

    def _start(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        import subprocess

        self.log = open(log_path, "w")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak RSS of the main process and of each of its children."""
        peaks = {"main": peak_rss_mb(self.process.pid)}
        for n, child in enumerate(children(self.process.pid)):
            peaks[f"{self.child_label} {n + 1}"] = peak_rss_mb(child)
        return peaks

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except Exception:
                self.process.kill()
        self.log.close()


class Worker(_Service):
    """A real Celery worker process, started as `make run` starts it
    (config.celery.worker_argv: prefork, one child that loads the model),
    with `env` on top of this process's environment."""

    def __init__(self, queues: list[str], env: dict[str, str], log_path: Path, loglevel: str = "WARNING"):
        from config.celery import worker_argv

        self._start(worker_argv(queues, loglevel=loglevel), env, log_path)


def wait_settled(media_ids: list[int], timeout: float, poll: float = 0.02) -> float:
    """Wait until every item is ready or failed; returns the time.perf_counter()
    at which the last one was seen settled. Raises on timeout or a failure."""
    import time

    from catalog.models import Media

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        open_items = Media.objects.filter(pk__in=media_ids).exclude(status__in=["ready", "failed"]).count()
        if open_items == 0:
            now = time.perf_counter()
            failed = list(Media.objects.filter(pk__in=media_ids, status="failed").values_list("pk", "error")[:3])
            if failed:
                raise RuntimeError(f"media failed: {failed}")
            return now
        time.sleep(poll)
    raise TimeoutError(f"{len(media_ids)} media not settled within {timeout:.0f} s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server(_Service):
    """The web app under gunicorn (as the Dockerfile serves it) on a free
    loopback port, the model preloaded in each worker; `env` on top of this
    process's environment."""

    child_label = "worker"

    def __init__(self, env: dict[str, str], workers: int, log_path: Path, threads: int = 1):
        import time
        import urllib.request

        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
        argv += ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"]
        self._start(argv, {"SEARCH_PRELOAD": "1", **env}, log_path)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {log_path}")
            try:
                with urllib.request.urlopen(self.url("/health/"), timeout=2):  # noqa: S310 - loopback
                    if len(children(self.process.pid)) >= workers:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"gunicorn did not answer; see {log_path}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def new_tenant(slug: str, name: str = "", **settings) -> tuple:
    """A tenant made as every creator makes one (catalog.tenants.create_tenant,
    with its settings, `settings` on top of the defaults) and a write key for
    it: (tenant, the key's plaintext)."""
    from catalog.models import ApiKey, Tenant
    from catalog.tenants import create_tenant

    tenant = create_tenant(Tenant(slug=slug, name=name or slug), **settings)
    return tenant, ApiKey.issue(tenant, "bench", scope=ApiKey.Scope.WRITE)[1]
