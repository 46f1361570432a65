"""Loaded by pytest before Django (`-p tests.services_env` in pyproject.toml):
a bare `pytest` uses the suite's own embedded services under .data/test (started
by `make test`, or by `python -m config.embedded_services start --data-dir
.data/test`), never the demo's. DATABASE_URL and friends in the environment still win."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / ".data" / "test"

os.environ.setdefault("STOCKMIND_SERVICES_ENV", str(TEST_DATA / "services.env"))
os.environ.setdefault("MEDIA_ROOT", str(TEST_DATA / "media"))
# Replicas would not see a test's rows (inside its transaction): the suite runs
# without them; tests/test_replicas.py starts a server with one of its own.
os.environ.pop("DATABASE_REPLICA_URLS", None)
# The suite never downloads: a hub id must fail fast, not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
