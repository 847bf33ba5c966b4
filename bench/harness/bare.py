"""The bare baselines, each served by `uvicorn --loop uvloop --http httptools` in a
process of its own (harness.bare): what a user could assemble from the same stock parts
without the monitor's work.

- `webhook`: a Starlette JSON endpoint on the webhook path that parses the body and
  answers a small JSON (no auth check, no validation, no storage).
- `naive_metrics()` (a factory, `--factory`): plain prometheus_client labelled Gauges
  holding every sample of an exposition file (BENCH_EXPOSITION: the monitor's scraped
  /metrics), rendered by `generate_latest` on every scrape — the straightforward way.
- `hello`: GET / answers {"status": "ok"} (start-up baseline).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEBHOOK_PATH = "/webhooks/time-series"


async def _webhook(request: Request) -> JSONResponse:
    json.loads(await request.body())
    return JSONResponse({"status": "accepted", "duplicate": False})


webhook = Starlette(routes=[Route(WEBHOOK_PATH, _webhook, methods=["POST"])])


async def _hello(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


hello = Starlette(routes=[Route("/", _hello), Route("/healthz", _hello)])


def naive_registry(exposition: str) -> CollectorRegistry:
    """Every sample of `exposition`, held in plain labelled Gauges of a fresh registry
    (one Gauge per sample name, so counters' _total and histograms' _bucket series are
    gauges of those names: the same series, the same label sets)."""
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            by_name[sample.name].append((sample.labels, sample.value))
    registry = CollectorRegistry()
    for name, samples in by_name.items():
        labelnames = sorted({k for labels, _ in samples for k in labels})
        gauge = Gauge(name, f"naive {name}", labelnames, registry=registry)
        for labels, value in samples:
            if labelnames:
                gauge.labels(**{k: labels.get(k, "") for k in labelnames}).set(value)
            else:
                gauge.set(value)
    return registry


def naive_metrics() -> Starlette:
    with open(os.environ["BENCH_EXPOSITION"], encoding="utf-8") as file:
        registry = naive_registry(file.read())

    async def scrape(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/metrics", scrape), Route("/healthz", _hello)])
