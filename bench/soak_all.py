"""`make soak`: the fault run and the load run in turn, then docs/RELIABILITY.md.

    .venv/bin/python bench/soak_all.py [--quick]

Runs bench/soak_faults.py and bench/soak_load.py each as its own process, one
after the other, collects the tables they emit and writes docs/RELIABILITY.md
with the machine, the versions, the date, the duration, each table and a
verdict per requirement. `--quick` feeds 200 items with fewer faults and loads
for 10 s with a burst of 60: it checks the scripts in a few minutes, and its
figures are not the ones to quote. Exits non-zero when a requirement is missed
or a script fails, after writing the page.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT
from bench.report import MISSED, Section, earlier_sections, failures_lines, page_head, run_scripts, write_page

OUTPUT = ROOT / "docs" / "RELIABILITY.md"

# (script, arguments, arguments with --quick)
SCRIPTS = [
    ("soak_faults.py", [], ["--items", "200", "--rate", "6", "--kills", "2", "--outage", "5"]),
    ("soak_load.py", [], ["--seconds", "10", "--burst", "60", "--warm-up", "3"]),
]
# (the section of a requirement as the issue puts it, the key of its checks)
REQUIREMENTS = [
    (
        Section(
            "1. Faults during an ingest: nothing lost",
            ("faults", "faults-verdict"),
            "During an ingest of 2,000 items through the real Celery worker: the worker killed with SIGKILL five "
            "times at random moments; Redis stopped and restarted once; PostgreSQL stopped and restarted once; the "
            "SQS bridge killed between enqueueing and deleting a message. After recovery (sweeper and retries, no "
            "hand work), every item is `ready` or `failed` with a reason, with exactly one set of embeddings each.",
        ),
        "faults-verdict",
    ),
    (
        Section(
            "2. Load through the HTTP server",
            ("load", "load-verdict"),
            "Against the real HTTP server on loopback (gunicorn with several workers, a Celery worker running): 8 "
            "concurrent clients for 60 seconds mixing searches (image, text, similar), uploads and lists, then a "
            "burst of 500 uploads: zero 5xx, no lost upload (every accepted upload ends ready or failed with a "
            "reason), p95 reported per endpoint; the resident memory of every process before and after (growth "
            "beyond 10% flagged).",
        ),
        "load-verdict",
    ),
]
MET = "**met**"


def requirement_verdict(tables: list[dict], checks_key: str) -> str:
    checks = [table for table in tables if table["key"] == checks_key]
    if not checks:
        return "not established (the script did not finish: see its failure above)"
    missed = [row[0] for table in checks for row in table["rows"] if MISSED in row]
    return "**missed**: " + "; ".join(missed) if missed else MET


def introduction(quick: bool) -> str:
    return (
        f"Written by `make soak` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{' (--quick: 200 items, fewer faults, 10 s of load; not figures to quote)' if quick else ''}. "
        "Long runs of a whole deployment on loopback, with faults and under load, checked in the database "
        "afterwards. They run on the demo's PostgreSQL and Redis (`make services`), each in a database and a "
        "Redis database of its own, with the tiny CLIP (`make model`): what is measured is whether anything is "
        "lost, not speed (`make bench` measures that). Logs of every process are under `.data/soak/logs/`; "
        "the scripts and what they do are in bench/README.md."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()

    started = time.monotonic()
    earlier = earlier_sections(OUTPUT) if args.only else {}
    tables, seconds_each, failures = run_scripts(SCRIPTS, args.quick, args.only)
    timings = [f"{script} {seconds / 60:.1f} min" for script, seconds in seconds_each]
    verdicts = [(section.heading, requirement_verdict(tables, checks)) for section, checks in REQUIREMENTS]
    lines = page_head("Reliability", introduction(args.quick), started, timings)
    lines += ["## Verdicts", "", *(f"- {heading}: {result}" for heading, result in verdicts), ""]
    lines += failures_lines(failures)
    for section, _ in REQUIREMENTS:
        lines += section.lines(tables, earlier)
    write_page(OUTPUT, lines, started)
    for heading, result in verdicts:
        print(f"{heading}: {result}")
    if failures or any(result != MET for _, result in verdicts):
        sys.exit("; ".join(failures) or "a requirement was missed")


if __name__ == "__main__":
    main()
