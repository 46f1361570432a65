"""Tables and the pages they make: what a script measured, formatted.

A script reports through `emit(Table(...))`. Run alone it only prints; under
bench/run_all.py or bench/soak_all.py (run_scripts() sets BENCH_RESULTS) each
table is also appended, as JSON, to the file that names it, and the runner
writes the tables into its page (docs/BENCHMARKS.md, docs/RELIABILITY.md)
under the machine, the versions and the run time.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import ROOT, read_services_env

# The file run_scripts() collects the tables of its scripts in.
RESULTS_ENV = "BENCH_RESULTS"
# A required check's verdict when it fails: soak_all.py reads it in the rows.
MISSED = "MISSED"


# --- tables -----------------------------------------------------------------------


@dataclass
class Table:
    """One result table. `rows` hold values already formatted or numbers;
    `target` and `verdict` say what the figure is held to, where it is."""

    key: str  # which section of the page: ingest, fidelity, video, vector, api, memory; faults, load, ...
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *values) -> None:
        self.rows.append(list(values))

    def cells(self) -> list[list[str]]:
        return [[format_value(value) for value in row] for row in self.rows]

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


def format_value(value) -> str:
    """A number with as many digits as its size deserves; anything else as it is."""
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
    results = os.environ.get(RESULTS_ENV)
    if results:
        with open(results, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(table) | {"markdown": table.markdown()}) + "\n")


@dataclass
class Check:
    """One check of a requirement: what was found, whether it passed, and
    whether the requirement stands or falls with it."""

    name: str
    found: str
    ok: bool
    required: bool = True


def passed(checks: list[Check]) -> bool:
    return all(check.ok for check in checks if check.required)


def checks_table(key: str, title: str, checks: list[Check], requirement: str, minutes: float, *, unmet: str) -> Table:
    """The checks of a requirement and its verdict; `unmet` is the verdict of a
    check that failed and is not required."""
    table = Table(key, title, ["check", "found", "verdict"])
    for check in checks:
        table.add(check.name, check.found, "met" if check.ok else (MISSED if check.required else unmet))
    result = "met" if passed(checks) else MISSED
    table.notes.append(f"{requirement}: **{result}**. Run time {minutes:.1f} min.")
    return table


# --- running the scripts, and their page ------------------------------------------


def run_scripts(scripts: list[tuple[str, list[str], list[str]]], quick: bool, only: list[str] | None):
    """Runs each (script, arguments, arguments with --quick) of bench/ as its
    own process, one after another; returns the tables they emitted, each
    script's run time in seconds, and the failures."""
    import subprocess
    import tempfile

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
                env={**os.environ, RESULTS_ENV: str(results)},
            )
            timings.append((script, time.monotonic() - began))
            if status:
                failures.append(f"bench/{script} exited with {status}")
        if results.exists():
            tables = [json.loads(line) for line in results.read_text().splitlines()]
    return tables, timings, failures


def machine() -> list[str]:
    from media_pipeline.runtimes import vector_units  # the units the embedder's defaults go by

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; vector units: {', '.join(vector_units()) or 'none of note'}",
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
    import psycopg

    read_services_env()
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return f"PostgreSQL {server}, pgvector {row[0] if row else 'missing'}"


def minutes_since(started: float) -> float:
    return (time.monotonic() - started) / 60


def page_head(title: str, introduction: str, started: float, timings: list[str]) -> list[str]:
    """The page's title and introduction, then the machine, the versions and
    the run time (since time.monotonic() `started`, with each script's)."""
    return [
        f"# {title}",
        "",
        introduction,
        "",
        *machine(),
        f"- {versions()}",
        f"- {database_versions()}",
        f"- Run time: {minutes_since(started):.1f} min ({', '.join(timings)})",
        "",
    ]


def failures_lines(failures: list[str]) -> list[str]:
    return ["**Failed:** " + "; ".join(failures), ""] if failures else []


@dataclass
class Section:
    """A part of the page: its heading, the requirement it answers (quoted
    under the heading, where there is one) and the keys of its tables."""

    heading: str
    keys: tuple[str, ...]
    requirement: str = ""

    def lines(self, tables: list[dict], earlier: dict[str, list[str]] | None = None) -> list[str]:
        """The section's lines: its tables of this run; without any, what the
        page said before under the same title (`earlier`, kept by a run of
        some scripts only)."""
        held = [table for table in tables if table["key"] in self.keys]
        before = (earlier or {}).get(_title(self.heading))
        if not held and before and NOT_RUN not in before:
            while before and not before[0]:  # the blank lines under the heading and the note, written again here
                before = before[1:]
            return [f"## {self.heading}", "", KEPT, "", *before]
        lines = [f"## {self.heading}", ""]
        if self.requirement:
            lines += [f"> {self.requirement}", ""]
        return lines + ([part for table in held for part in (table["markdown"], "")] or [NOT_RUN, ""])


NOT_RUN = "(not run)"
KEPT = "(Not run this time: kept from the page's earlier run, whose machine and versions may differ.)"


def _title(heading: str) -> str:
    """A section's heading without its number: "4. Vector search" -> "Vector search"."""
    number, _, rest = heading.partition(". ")
    return rest if number.isdigit() else heading


def earlier_sections(path: Path) -> dict[str, list[str]]:
    """The sections of the page as written before, by title (heading without
    its number), each without its heading and note of having been kept: what
    a run of some scripts only (--only) keeps."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("## "):
            current = sections.setdefault(_title(line[3:]), [])
        elif current is not None and line != KEPT:
            current.append(line)
    return sections


def write_page(path: Path, lines: list[str], started: float) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"\nWrote {path.relative_to(ROOT)} in {minutes_since(started):.1f} min.")
