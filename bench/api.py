"""The search API end to end, through the real HTTP server.

    .venv/bin/python bench/api.py [--vectors 5000] [--requests 100] [--seconds 15]

Serves the app with gunicorn as the Dockerfile does (one process of 8
threads: its forward passes take turns, each using every core; the
ViT-B/32-shaped model preloaded, int8) over a throwaway
database holding one tenant's catalog of `--vectors` image vectors (with the
HNSW index of its own that beat gives a tenant of that size). Then, with
a real HTTP client on loopback:

- one client, one request at a time: p50 and p95 of `/search/image` (a
  1024x768 JPEG upload) and `/search/text`, after a warm-up;
- 8 concurrent clients for `--seconds` per endpoint: requests per second,
  p50 and p95, the rate limiter's 429s and errors (any other status but
  200) apart. The server runs with the rate limit lifted (API_RATE_LIMIT
  empty): the one key every client uses would otherwise be refused, and the
  requests per second would be the limiter's, not the server's.

Beside them, in this process and the same run, the model's own forward pass
for the same queries at the server's precision (text: tokenize and the text
tower; image: the vision tower on preprocessed pixels): the API's overhead is
the end-to-end p95 less the forward pass's p95, and the throughput 8 clients
can reach is bounded by one forward pass at a time per web process.

Also the web workers' peak resident memory. Each figure is the median of
`--rounds` rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BENCH_LOG_DIR,
    QUERY_WORDS,
    Server,
    add_products,
    api_session,
    clear_clip_settings,
    in_threads,
    median,
    new_tenant,
    percentile,
    set_up_django,
    use_bench_database,
    vit_b_32,
)
from bench.report import Table, emit, verdict

TARGET_P95_MS = {"image": 80.0, "text": 40.0}
TARGET_OVERHEAD_MS = 10.0
TARGET_WEB_MIB = 600
TARGET_THROUGHPUT_SHARE = 0.9
FORWARD_RUNS = 50
CONCURRENT_CLIENTS = 8
WARM_UPS = 10  # requests before one client's are timed: every worker, caches
ENDPOINTS = ("image", "text")
QUERY_IMAGES = 20


def load_catalog(vectors: int) -> str:
    """One tenant with `vectors` image vectors over vectors/10 products; its write key."""
    from catalog.models import Embedding, Media, TenantSettings
    from media_pipeline.embedder import model_name_for
    from search.tenant_indexes import sync

    rng = np.random.default_rng(3)
    tenant, key = new_tenant("bench-api", "bench api")
    # The catalog's vectors are random, so a query's nearest sit near cosine 0.3:
    # no minimum, so that every search finds a page of products, as searches of
    # a real catalog do (a search that finds nothing costs one more ranking).
    TenantSettings.objects.filter(tenant=tenant).update(min_similarity=0.0)
    products = add_products(tenant, max(1, vectors // 10), sku_prefix="sku-")
    media = Media.objects.bulk_create(
        Media(
            tenant=tenant,
            product=products[i % len(products)],
            kind=Media.Kind.IMAGE,
            storage_key=f"bench/api/{i}.jpg",
            content_type="image/jpeg",
            size=1,
            status=Media.Status.READY,
        )
        for i in range(vectors)
    )
    units = rng.standard_normal((vectors, 512)).astype(np.float32)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    model_name = model_name_for(os.environ["CLIP_MODEL"])
    Embedding.objects.bulk_create(
        (
            Embedding(tenant=tenant, media=m, product_id=m.product_id, model_name=model_name, vector=v)
            for m, v in zip(media, units, strict=True)
        ),
        batch_size=2000,
    )
    sync(progress=lambda line: None)  # a tenant this large gets its own index, as beat would give it
    return key


def query_images(count: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(4)
    out = []
    for _ in range(count):
        image = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(
            (1024, 768), Image.Resampling.BICUBIC
        )
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


class Client:
    def __init__(self, server: Server, key: str, images: list[bytes], seed: int):
        self.session = api_session(key)
        self.server, self.images = server, images
        self.rng = np.random.default_rng(seed)

    def search(self, endpoint: str) -> tuple[float, int]:
        started = time.perf_counter()
        if endpoint == "image":
            image = self.images[int(self.rng.integers(len(self.images)))]
            response = self.session.post(
                self.server.url("/api/v1/search/image"), files={"file": ("query.jpg", image, "image/jpeg")}
            )
        else:
            words = " ".join(self.rng.choice(QUERY_WORDS, size=3))
            response = self.session.post(self.server.url("/api/v1/search/text"), json={"query": words})
        return (time.perf_counter() - started) * 1000, response.status_code


@dataclass
class Answers:
    """The statuses of a run's answers: 200s, the rate limiter's 429s, the rest."""

    ok: int = 0
    throttled: int = 0
    errors: int = 0

    def count(self, status: int) -> None:
        if status == 200:
            self.ok += 1
        elif status == 429:
            self.throttled += 1
        else:
            self.errors += 1

    def add(self, other: Answers) -> None:
        self.ok, self.throttled, self.errors = (
            self.ok + other.ok,
            self.throttled + other.throttled,
            self.errors + other.errors,
        )

    @property
    def total(self) -> int:
        return self.ok + self.throttled + self.errors


def one_client(client: Client, endpoint: str, requests_: int) -> tuple[list[float], Answers]:
    for _ in range(WARM_UPS):
        client.search(endpoint)
    latencies, answers = [], Answers()
    for _ in range(requests_):
        ms, status = client.search(endpoint)
        latencies.append(ms)
        answers.count(status)
    return latencies, answers


def concurrent(clients: list[Client], endpoint: str, seconds: float) -> tuple[list[float], Answers, float]:
    latencies: list[float] = []
    answers = Answers()
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def run(client: Client) -> None:
        while time.perf_counter() < stop_at:
            ms, status = client.search(endpoint)
            with lock:
                latencies.append(ms)
                answers.count(status)

    seconds_taken = in_threads(clients, run)
    return latencies, answers, len(latencies) / seconds_taken


def forward_passes(images: list[bytes]) -> dict[str, list[float]]:
    """Milliseconds of the model's own forward pass per query, text and image,
    at the precision the server runs (this process loads the same model)."""
    from PIL import Image

    from media_pipeline.embedder import get_embedder

    embedder = get_embedder()
    rng = np.random.default_rng(5)
    pixels = [embedder.preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data in images]
    queries = [" ".join(rng.choice(QUERY_WORDS, size=3)) for _ in range(FORWARD_RUNS)]
    out: dict[str, list[float]] = {"image": [], "text": []}
    for i in range(WARM_UPS + FORWARD_RUNS):
        for endpoint, run in (
            ("image", lambda i=i: embedder.embed_pixels([pixels[i % len(pixels)]])),
            ("text", lambda i=i: embedder.embed_texts([queries[i % len(queries)]])),
        ):
            started = time.perf_counter()
            run()
            if i >= WARM_UPS:
                out[endpoint].append((time.perf_counter() - started) * 1000)
    return out


@dataclass
class Rounds:
    """Per endpoint, each round's figures, and the errors and requests of all rounds."""

    single: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # one client: (p50, p95)
    loaded: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)  # (req/s, p50, p95)
    forward: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # the model alone: (p50, p95)
    answers: dict[str, Answers] = field(default_factory=dict)  # one client's and the concurrent ones'

    def __post_init__(self) -> None:
        for endpoint in ENDPOINTS:
            self.single[endpoint], self.loaded[endpoint], self.forward[endpoint] = [], [], []
            self.answers[endpoint] = Answers()


def measure(server: Server, key: str, images: list[bytes], args) -> Rounds:
    """Each round, each endpoint: one client, then CONCURRENT_CLIENTS at once."""
    rounds = Rounds()
    for round_ in range(args.rounds):
        # The model alone, while the server is idle: side by side with its answers.
        for endpoint, samples in forward_passes(images).items():
            rounds.forward[endpoint].append((median(samples), percentile(samples, 95)))
        for endpoint in ENDPOINTS:
            latencies, answers = one_client(Client(server, key, images, round_), endpoint, args.requests)
            rounds.single[endpoint].append((median(latencies), percentile(latencies, 95)))
            rounds.answers[endpoint].add(answers)
            clients = [Client(server, key, images, 100 * round_ + n) for n in range(CONCURRENT_CLIENTS)]
            latencies, answers, rate = concurrent(clients, endpoint, args.seconds)
            rounds.loaded[endpoint].append((rate, median(latencies), percentile(latencies, 95)))
            rounds.answers[endpoint].add(answers)
            print(
                f"round {round_ + 1} /search/{endpoint}: one client p95 {rounds.single[endpoint][-1][1]:.1f} ms, "
                f"{CONCURRENT_CLIENTS} clients {rate:.1f} req/s",
                flush=True,
            )
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=CONCURRENT_CLIENTS)
    args = parser.parse_args()

    use_bench_database("stockmind_bench_api")
    os.environ["CLIP_MODEL"] = str(vit_b_32())
    clear_clip_settings()
    BENCH_LOG_DIR.mkdir(parents=True, exist_ok=True)
    set_up_django()
    key = load_catalog(args.vectors)
    images = query_images(QUERY_IMAGES)
    # The limit lifted: every client sends the one key (see the module's docstring).
    server = Server({"API_RATE_LIMIT": ""}, args.workers, BENCH_LOG_DIR / "api-gunicorn.log", threads=args.threads)
    try:
        rounds = measure(server, key, images, args)
        peaks = server.peak_rss_mb()
    finally:
        server.stop()
    emit(search_table(args, rounds))
    emit(load_table(args, rounds))
    emit(memory_table(peaks))


def search_table(args, rounds: Rounds) -> Table:
    table = Table(
        "api",
        f"Search API through gunicorn ({args.workers} worker x {args.threads} threads, {backend()}), one client, "
        f"a tenant of {args.vectors:,} vectors, median of {args.rounds} rounds",
        [
            "endpoint",
            "p50 ms",
            "p95 ms",
            "target p95",
            "verdict",
            "forward pass p95 ms",
            "overhead p95 ms",
            "target",
            "verdict",
        ],
    )
    for endpoint in ENDPOINTS:
        p50 = median([s[0] for s in rounds.single[endpoint]])
        p95 = median([s[1] for s in rounds.single[endpoint]])
        forward_p95 = median([f[1] for f in rounds.forward[endpoint]])
        target = TARGET_P95_MS[endpoint]
        overhead = p95 - forward_p95
        table.add(
            f"POST /api/v1/search/{endpoint}",
            p50,
            p95,
            f"<= {target:.0f}",
            verdict(p95, target, at_least=False),
            forward_p95,
            overhead,
            f"<= {TARGET_OVERHEAD_MS:.0f}",
            verdict(overhead, TARGET_OVERHEAD_MS, at_least=False),
        )
    table.notes.append(
        f"{args.requests} requests a round after {WARM_UPS} warm-ups. Image queries are 1024x768 JPEGs (about "
        "60 KB); text queries three words. The forward pass: the model alone in this process on the same queries "
        f"({FORWARD_RUNS} a round; text: tokenize and the text tower; image: the vision tower on preprocessed "
        "pixels); the overhead is the p95 end to end less the forward pass's p95: HTTP, the API key, decoding "
        "and preprocessing the upload, the vector query, the search log."
    )
    return table


def load_table(args, rounds: Rounds) -> Table:
    table = Table(
        "api-load",
        f"Search API under load: {CONCURRENT_CLIENTS} clients with one key, the rate limit lifted, "
        f"{args.seconds:.0f} s a round, median of {args.rounds} rounds",
        [
            "endpoint",
            "req/s",
            "forward passes/s the cores allow",
            "share",
            "target",
            "verdict",
            "p50 ms",
            "p95 ms",
            "429s",
            "other non-200",
            "answers",
        ],
    )
    for endpoint in ENDPOINTS:
        rate, lp50, lp95 = (median([x[i] for x in rounds.loaded[endpoint]]) for i in range(3))
        # One forward pass at a time per web process, each over every core.
        allowed = 1000 / median([f[0] for f in rounds.forward[endpoint]])
        answers = rounds.answers[endpoint]
        share = rate / allowed
        table.add(
            f"POST /api/v1/search/{endpoint}",
            rate,
            allowed,
            f"{share:.2f}",
            f">= {TARGET_THROUGHPUT_SHARE}",
            verdict(share, TARGET_THROUGHPUT_SHARE, at_least=True),
            lp50,
            lp95,
            answers.throttled,
            f"{answers.errors} (target 0)",
            f"{answers.total:,}",
        )
    table.notes.append(
        "Forward passes/s the cores allow: 1000 / the forward pass's median ms, measured in the same round (the "
        "model's runtime runs one pass at a time per process over every core). 429s and other non-200 answers are "
        "counted over every request of the runs, the one client's included."
    )
    return table


def backend() -> str:
    from media_pipeline.embedder import get_embedder

    return str(get_embedder().backend)


def memory_table(peaks: dict[str, float]) -> Table:
    from media_pipeline.embedder import get_embedder

    table = Table(
        "web-memory",
        f"Web memory: peak resident set of the gunicorn processes ({get_embedder().backend}, both towers; "
        f"target for a worker with the model: <= {TARGET_WEB_MIB} MiB)",
        ["process", "peak RSS, MiB", "verdict"],
    )
    for process, mib in peaks.items():
        if process == "main":
            table.add("web main", mib, "")
        else:
            table.add(f"web {process} (model loaded)", mib, verdict(mib, TARGET_WEB_MIB, at_least=False))
    return table


if __name__ == "__main__":
    main()
