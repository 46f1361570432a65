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
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT
from bench.report import Section, earlier_sections, failures_lines, page_head, run_scripts, write_page

OUTPUT = ROOT / "docs" / "BENCHMARKS.md"

# (script, arguments, arguments with --quick)
SCRIPTS = [
    ("ingest.py", [], ["--images", "32", "--rounds", "1"]),
    ("video.py", [], ["--rounds", "1"]),
    ("vector_search.py", [], ["--quick"]),
    ("vector_scale.py", [], ["--quick"]),
    ("vector_plans.py", [], ["--quick"]),
    ("search_v2.py", [], ["--quick"]),
    ("api.py", [], ["--requests", "30", "--seconds", "5", "--rounds", "1"]),
    ("bulk_import.py", [], ["--products", "2000", "--rounds", "1"]),
    ("search_analytics.py", [], ["--searches", "100000", "--runs", "1"]),
    ("console_lists.py", [], ["--media", "100000", "--runs", "1"]),
    ("duplicates.py", [], ["--images", "20000", "--copies", "50"]),
    ("gpu.py", [], ["--images", "64", "--rounds", "1"]),
]
SECTIONS = [
    Section("1. Image ingest, end to end", ("ingest",)),
    Section("2. The runtimes side by side", ("fidelity",)),
    Section("3. Video", ("video",)),
    Section("4. Vector search", ("vector",)),
    Section("5. Vector search at scale", ("vector_scale",)),
    Section("6. Vector plans side by side", ("vector_plans",)),
    Section("7. Search API, end to end, and the web process's memory", ("api", "api-load", "web-memory")),
    Section("8. Worker memory", ("memory",)),
    Section("9. Search v2: the search log, text modes, deep pages", ("search_v2",)),
    Section("10. Catalog bulk import", ("bulk",)),
    Section("11. Search analytics", ("analytics",)),
    Section("12. Console pages with pictures", ("console",)),
    Section("13. Duplicate checks in a large tenant", ("duplicates",)),
    Section("14. GPU", ("gpu",)),
]


def introduction(quick: bool) -> str:
    return (
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{' (--quick: smaller loads, one round; not figures to quote)' if quick else ''}. "
        "Each figure is a median over repeated runs, and every comparison was measured side by side in the "
        "same run. The model is ViT-B/32-shaped with random weights (`build_clip_model --size vit-b-32`): "
        "speed does not depend on the weights' values. What was tried beside what these tables show, and why "
        "the targets missed are missed, is in bench/README.md."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()

    started = time.monotonic()
    earlier = earlier_sections(OUTPUT) if args.only else {}
    tables, seconds_each, failures = run_scripts(SCRIPTS, args.quick, args.only)
    timings = [f"{script} {seconds:.0f} s" for script, seconds in seconds_each]
    lines = page_head("Benchmarks", introduction(args.quick), started, timings)
    lines += failures_lines(failures)
    for section in SECTIONS:
        lines += section.lines(tables, earlier)
    write_page(OUTPUT, lines, started)
    if failures:
        sys.exit("; ".join(failures))


if __name__ == "__main__":
    main()
