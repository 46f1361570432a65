"""The OpenAPI schema against the server, as a new user would try it: the
schemathesis 4 CLI with every check (`--checks all`) over every operation of
/api/schema/, against the live server with a tenant's key, a bounded number
of examples per operation and a fixed seed. Every status code and error body
the server answers must be documented, and every request the schema calls
valid must be accepted.

One thing the schema cannot say is what a file holds: an upload's bytes are
an image or a video the server checks by content, and the fuzzer's are
random, so for the two operations that take a file `415` and `422` count as
answers to valid requests (FUZZ_CONFIG). Text holding NUL is refused with a
400 (PostgreSQL cannot store it), which no JSON Schema string type says, so
the fuzzer leaves NUL out. Nor can it say where a URL's host points: a
webhook URL whose host does not resolve to a public address is a 400."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog.models import ApiKey, Tenant
from catalog.tenants import create_tenant
from catalog.webhooks import create_endpoint
from tests.catalogs import bulk_catalog

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = 25
SEED = 1603
TIMEOUT_S = 420
MIN_CASES = 1_000  # the run above tried 1,743: far fewer means operations were skipped
FUZZ_CONFIG = """
[[operations]]
include-name = "POST /api/v1/webhooks/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "429"]

[[operations]]
include-path = "/api/v1/search/similar/{{media_id}}"
parameters = {{ "media_id" = {media_id} }}

[[operations]]
include-path-regex = "^/api/v1/(media/|search/image)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "415", "422", "429"]
"""


@pytest.fixture
def fuzzed(live_server, transactional_db, clip, tmp_path, s3_bucket):
    """A tenant with a few products and their vectors, its key, and the
    fuzzer's configuration naming an item to find more like; storage and
    presigned uploads on S3 (moto)."""
    tenant = create_tenant(Tenant(slug="fuzz", name="fuzz"))
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((5, 512)).astype(np.float32)
    media = bulk_catalog(tenant, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    for n in range(3):  # a list of endpoints with pages
        create_endpoint(tenant, f"https://93.184.216.{n + 1}/hooks", ["media.ready"])
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG.format(media_id=media[0].pk))
    return ApiKey.issue(tenant, "fuzzer", scope=ApiKey.Scope.WRITE)[1], config


def test_every_operation_answers_as_its_schema_says(live_server, fuzzed, tmp_path):
    key, config = fuzzed
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{live_server.url}/api/schema/",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--workers",
        "1",
        "--no-color",
        "--generation-allow-x00",
        "false",
        "--report-dir",
        str(tmp_path),
    ]
    # In tmp_path: schemathesis keeps a cache of what it found in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20_000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts and counts[1] == counts[2] and int(counts[1]) >= MIN_CASES, output[-5_000:]
