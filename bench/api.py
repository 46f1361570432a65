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
  p50 and p95, and errors (any status but 200).

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
CONCURRENT_CLIENTS = 8
WARM_UPS = 10  # requests before one client's are timed: every worker, caches
ENDPOINTS = ("image", "text")
QUERY_IMAGES = 20


def load_catalog(vectors: int) -> str:
    """One tenant with `vectors` image vectors over vectors/10 products; its write key."""
    from catalog.models import Embedding, Media
    from media_pipeline.embedder import model_name_for
    from search.tenant_indexes import sync

    rng = np.random.default_rng(3)
    tenant, key = new_tenant("bench-api", "bench api")
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

    def search(self, endpoint: str) -> tuple[float, bool]:
        started = time.perf_counter()
        if endpoint == "image":
            image = self.images[int(self.rng.integers(len(self.images)))]
            response = self.session.post(
                self.server.url("/api/v1/search/image"), files={"file": ("query.jpg", image, "image/jpeg")}
            )
        else:
            words = " ".join(self.rng.choice(QUERY_WORDS, size=3))
            response = self.session.post(self.server.url("/api/v1/search/text"), json={"query": words})
        return (time.perf_counter() - started) * 1000, response.status_code == 200


def one_client(client: Client, endpoint: str, requests_: int) -> tuple[list[float], int]:
    for _ in range(WARM_UPS):
        client.search(endpoint)
    latencies, errors = [], 0
    for _ in range(requests_):
        ms, ok = client.search(endpoint)
        latencies.append(ms)
        errors += not ok
    return latencies, errors


def concurrent(clients: list[Client], endpoint: str, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def run(client: Client) -> None:
        while time.perf_counter() < stop_at:
            ms, ok = client.search(endpoint)
            with lock:
                latencies.append(ms)
                errors[0] += not ok

    seconds_taken = in_threads(clients, run)
    return latencies, errors[0], len(latencies) / seconds_taken


@dataclass
class Rounds:
    """Per endpoint, each round's figures, and the errors and requests of all rounds."""

    single: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # one client: (p50, p95)
    loaded: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)  # (req/s, p50, p95)
    errors: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for endpoint in ENDPOINTS:
            self.single[endpoint], self.loaded[endpoint] = [], []
            self.errors[endpoint] = self.counts[endpoint] = 0


def measure(server: Server, key: str, images: list[bytes], args) -> Rounds:
    """Each round, each endpoint: one client, then CONCURRENT_CLIENTS at once."""
    rounds = Rounds()
    for round_ in range(args.rounds):
        for endpoint in ENDPOINTS:
            latencies, failed = one_client(Client(server, key, images, round_), endpoint, args.requests)
            rounds.single[endpoint].append((median(latencies), percentile(latencies, 95)))
            rounds.errors[endpoint] += failed
            clients = [Client(server, key, images, 100 * round_ + n) for n in range(CONCURRENT_CLIENTS)]
            latencies, failed, rate = concurrent(clients, endpoint, args.seconds)
            rounds.loaded[endpoint].append((rate, median(latencies), percentile(latencies, 95)))
            rounds.errors[endpoint] += failed
            rounds.counts[endpoint] += args.requests + len(latencies)
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
    os.environ.pop("CLIP_PRECISION", None)
    BENCH_LOG_DIR.mkdir(parents=True, exist_ok=True)
    set_up_django()
    key = load_catalog(args.vectors)
    images = query_images(QUERY_IMAGES)
    server = Server({}, args.workers, BENCH_LOG_DIR / "api-gunicorn.log", threads=args.threads)
    try:
        rounds = measure(server, key, images, args)
        peaks = server.peak_rss_mb()
    finally:
        server.stop()
    emit(search_table(args, rounds))
    emit(memory_table(peaks))


def search_table(args, rounds: Rounds) -> Table:
    table = Table(
        "api",
        f"Search API through gunicorn ({args.workers} worker x {args.threads} threads, int8), a tenant of "
        f"{args.vectors:,} vectors, "
        f"median of {args.rounds} rounds",
        [
            "endpoint",
            "1 client p50 ms",
            "p95 ms",
            "target p95",
            "verdict",
            f"{CONCURRENT_CLIENTS} clients req/s",
            "p50 ms",
            "p95 ms",
            "errors",
        ],
    )
    for endpoint in ENDPOINTS:
        p50 = median([s[0] for s in rounds.single[endpoint]])
        p95 = median([s[1] for s in rounds.single[endpoint]])
        rate, lp50, lp95 = (median([x[i] for x in rounds.loaded[endpoint]]) for i in range(3))
        target = TARGET_P95_MS[endpoint]
        table.add(
            f"POST /api/v1/search/{endpoint}",
            p50,
            p95,
            f"<= {target:.0f}",
            verdict(p95, target, at_least=False),
            rate,
            lp50,
            lp95,
            f"{rounds.errors[endpoint]} of {rounds.counts[endpoint]:,}",
        )
    table.notes.append(
        f"One client: {args.requests} requests a round after {WARM_UPS} warm-ups; {CONCURRENT_CLIENTS} clients: "
        f"{args.seconds:.0f} s a round. Image queries are 1024x768 JPEGs (about 60 KB); text queries three words."
    )
    return table


def memory_table(peaks: dict[str, float]) -> Table:
    table = Table("memory", "Web memory: peak resident set of the gunicorn processes", ["process", "peak RSS, MiB"])
    for process, mib in peaks.items():
        table.add(f"web {process}" + (" (model loaded)" if process != "main" else ""), mib)
    return table


if __name__ == "__main__":
    main()
