"""`make bench`: every benchmark in turn, then docs/BENCHMARKS.md.

    .venv/bin/python bench/run_all.py [--quick]

Runs each script as its own process (one after another: they measure the
machine and must not share it), collects the tables they emit and writes
docs/BENCHMARKS.md with the machine, the versions, the date and each table
beside its target. `--quick` runs fewer rounds and smaller loads, to check
the scripts themselves; its figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "BENCHMARKS.md"

# (script, arguments, arguments with --quick)
SCRIPTS = [
    ("ingest.py", [], ["--images", "32", "--rounds", "1"]),
    ("video.py", [], ["--rounds", "1"]),
    ("vector_search.py", [], ["--quick"]),
    ("api.py", [], ["--requests", "30", "--seconds", "5", "--rounds", "1"]),
]
SECTIONS = [
    ("ingest", "1. Image ingest, end to end"),
    ("fidelity", "2. Embedding fidelity"),
    ("video", "3. Video"),
    ("vector", "4. Vector search"),
    ("api", "5. Search API, end to end"),
    ("memory", "6. Memory"),
]


def machine() -> list[str]:
    cpu = "unknown"
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    vector_units = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; vector units: {', '.join(vector_units) or 'none of note'}",
        f"- Memory: {memory_kb / 1024 / 1024:.0f} GiB; {platform.system()} {platform.release()}",
    ]


def versions() -> str:
    import av
    import celery
    import django
    import PIL
    import psycopg
    import torch
    import transformers

    return (
        f"Python {platform.python_version()}, Django {django.__version__}, Celery {celery.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"Pillow {PIL.__version__}, PyAV {av.__version__}, psycopg {psycopg.__version__}"
    )


def database_versions() -> str:
    sys.path.insert(0, str(ROOT))
    import psycopg

    from bench.common import read_services_env

    read_services_env()
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return f"PostgreSQL {server}, pgvector {row[0] if row else 'missing'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from bench.common import run_scripts

    started = time.monotonic()
    tables, seconds_each, failures = run_scripts(SCRIPTS, args.quick, args.only)
    timings = [f"{script} {seconds:.0f} s" for script, seconds in seconds_each]

    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{' (--quick: smaller loads, one round; not figures to quote)' if args.quick else ''}. "
        "Each figure is a median over repeated runs, and every comparison was measured side by side in the "
        "same run. The model is ViT-B/32-shaped with random weights (`build_clip_model --size vit-b-32`): "
        "speed does not depend on the weights' values. What was tried beside what these tables show, and why "
        "the targets missed are missed, is in bench/README.md.",
        "",
        *machine(),
        f"- {versions()}",
        f"- {database_versions()}",
        f"- Run time: {(time.monotonic() - started) / 60:.1f} min ({', '.join(timings)})",
        "",
    ]
    if failures:
        lines += ["**Failed:** " + "; ".join(failures), ""]
    for key, heading in SECTIONS:
        lines += [f"## {heading}", ""]
        section = [table for table in tables if table["key"] == key]
        lines += [part for table in section for part in (table["markdown"], "")] or ["(not run)", ""]
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text("\n".join(lines))
    print(f"\nWrote {OUTPUT.relative_to(ROOT)} in {(time.monotonic() - started) / 60:.1f} min.")
    if failures:
        sys.exit("; ".join(failures))


if __name__ == "__main__":
    main()
