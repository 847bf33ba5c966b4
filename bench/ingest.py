"""Benchmark: durable webhook ingest against a bare Starlette endpoint that only parses JSON.

Two servers, each uvicorn in its own subprocess on a free loopback port, same settings
(no access log): the real monitor app (`create_app`, webhooks only, SQLite with
synchronous=FULL: bearer auth, body cap, strict validation, group commit, 200 after the
commit) and a bare Starlette endpoint on the same path that only parses the JSON body.
The real app is the product as shipped: it starts its webhook writer process
(receiver.ingest.writer), so its commits run beside the event loop on the machine's
other core, which the load generator shares; the bare endpoint is one process. A third
of the entries are ImplementationFailed, so the alert engine works all along.
An asyncio load generator (keep-alive HTTP/1.1 connections on raw streams, so that the
generator is not the bottleneck) sends distinct deliveries at both, in alternating
rounds of the same length; the best round of each counts.

Prints both sustained rates, their ratio, the p99 acknowledgement latency of the real
endpoint, that every acknowledged delivery is in the database, and the DESIGN.md target
(ratio >= 0.5) with PASS/FAIL. Exits 1 on FAIL.

    .venv/bin/python bench/ingest.py [--seconds 4] [--rounds 2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PATH = "/webhooks/time-series"
SECRET = "bench-webhook-secret-0001"
TARGET = 0.5
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)


# The servers (run as `bench/ingest.py --serve real|bare`).


def bare_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> JSONResponse:
        json.loads(await request.body())
        return JSONResponse({"status": "accepted", "duplicate": False})

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


def real_app(database_url: str) -> object:
    from pydantic import SecretStr

    from receiver.settings import Settings
    from receiver.web.app import create_app

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, webhook_secret=SecretStr(SECRET)
    )
    return create_app(settings)


def serve(kind: str, port: int, database_url: str) -> None:
    import uvicorn

    app = real_app(database_url) if kind == "real" else bare_app()
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


# The load generator.


@dataclass
class Round:
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class Deliveries:
    """Distinct, valid deliveries: a counter moves each one to its own 15-minute slots."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self.count = 0

    def next(self) -> bytes:
        n = self.count
        self.count += 1
        first = T0 + SLOT * (n // 50) * self.entries
        schedule = [
            {
                "start": (first + SLOT * i).isoformat().replace("+00:00", "Z"),
                "end": (first + SLOT * (i + 1)).isoformat().replace("+00:00", "Z"),
                "status": 1 + (n + i) % 3,
            }
            for i in range(self.entries)
        ]
        return json.dumps({"siteId": 1 + n % 50, "schedule": schedule}).encode()


def request_bytes(body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def connection(port: int, bodies: Deliveries, stop_at: float, result: Round) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request_bytes(bodies.next()))
            sent = time.perf_counter()
            status = await read_status(reader)
            if status == 200:
                result.ok += 1
                result.latencies.append(time.perf_counter() - sent)
            else:
                result.failed += 1
    finally:
        writer.close()


async def load(port: int, bodies: Deliveries, seconds: float, concurrency: int) -> Round:
    result = Round()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(connection(port, bodies, stop_at, result) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


# Orchestration.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(kind: str, port: int, database_url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*command, "--database-url", database_url], env=env)


def wait_listening(port: int, process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start within {within:.0f} s")


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def stored_deliveries(database_url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from receiver.storage.tables import WebhookDelivery

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            count: int = conn.execute(
                select(func.count()).select_from(WebhookDelivery)
            ).scalar_one()
            return count
    finally:
        engine.dispose()


def measure(args: argparse.Namespace, ports: dict[str, int]) -> tuple[dict[str, Round], int]:
    """The best round of each endpoint, and how many real deliveries got a 200 in all."""
    best: dict[str, Round] = {}
    bodies = {"bare": Deliveries(args.entries), "real": Deliveries(args.entries)}
    acknowledged = 0
    for kind in ("bare", "real"):  # warm-up: imports, connection pools, SQLite pages
        warm = asyncio.run(load(ports[kind], bodies[kind], 1.0, args.concurrency))
        acknowledged += warm.ok if kind == "real" else 0
    for _ in range(args.rounds):
        for kind in ("bare", "real"):
            result = asyncio.run(load(ports[kind], bodies[kind], args.seconds, args.concurrency))
            acknowledged += result.ok if kind == "real" else 0
            print(f"  {kind}: {result.rate:8.0f} deliveries/s ({result.failed} failed)")
            if kind not in best or result.rate > best[kind].rate:
                best[kind] = result
    return best, acknowledged


def report(best: dict[str, Round], acknowledged: int, stored: int) -> int:
    ratio = best["real"].rate / best["bare"].rate
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"bare Starlette (parse JSON only): {best['bare'].rate:8.0f} deliveries/s")
    print(f"real endpoint (durable commit):   {best['real'].rate:8.0f} deliveries/s")
    print(f"ratio: {ratio:.2f}")
    print(f"p99 acknowledgement latency (real): {p99(best['real'].latencies) * 1000:.1f} ms")
    print(f"acknowledged real deliveries in the database: {stored} of {acknowledged}")
    if best["real"].failed or stored < acknowledged:
        print("target >= 0.5: FAIL (deliveries failed or acknowledged ones are missing)")
        return 1
    print(f"target >= {TARGET}: {verdict}")
    return 0 if verdict == "PASS" else 1


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="cellect-bench-") as tmp:
        database_url = f"sqlite:///{tmp}/ingest.db"
        ports = {"bare": free_port(), "real": free_port()}
        servers = {kind: start(kind, port, database_url) for kind, port in ports.items()}
        try:
            for kind, port in ports.items():
                wait_listening(port, servers[kind])
            print(f"{args.concurrency} connections, {args.entries} entries a delivery")
            best, acknowledged = measure(args, ports)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)
        return report(best, acknowledged, stored_deliveries(database_url))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per endpoint")
    parser.add_argument("--concurrency", type=int, default=64, help="connections")
    parser.add_argument("--entries", type=int, default=2, help="schedule entries a delivery")
    parser.add_argument("--serve", choices=("real", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.database_url)
    else:
        sys.exit(main(arguments))
