"""`cellect-monitor run` as a user starts it: bad settings are one clear line, and the
one-command demo (`run --emulator`) fills history, receives webhooks and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def monitor_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    return {**env, "CELLECT_DATABASE_URL": f"sqlite:///{tmp_path}/m.db", **extra}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CELLECT_PORT", "abc"), ("CELLECT_DATABASE_URL", "mysql://x"), ("CELLECT_API_URL", "ftp:x")],
)
def test_bad_settings_are_one_clear_line(tmp_path: Path, variable: str, value: str) -> None:
    """A malformed setting stops `run` with a non-zero exit and one line naming it."""
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "run", "--port", "0"],
        env=monitor_env(tmp_path, **{variable: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert "Traceback" not in done.stderr


def scrape(url: str, name: str) -> float:
    """The value of one sample line of the monitor's /metrics (0 when absent)."""
    body = httpx.get(url + "/metrics", timeout=5).text
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def counts(db: Path) -> tuple[int, int]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            sites = conn.execute(text("select count(*) from sites")).scalar_one()
            measured = conn.execute(text("select count(*) from measurements")).scalar_one()
    except Exception:
        return 0, 0
    finally:
        engine.dispose()
    return int(sites), int(measured)


def test_the_demo_fills_history_and_stops_cleanly(tmp_path: Path) -> None:
    """`run --emulator` polls and receives webhooks within seconds; SIGTERM exits 0."""
    port, db = free_port(), tmp_path / "demo.db"
    command = [
        sys.executable, "-m", "receiver", "run", "--emulator", "--port", str(port),
        "--emulator-port", str(free_port()), "--database-url", f"sqlite:///{db}",
        "--speed", "600", "--sites", "3",
    ]  # fmt: skip
    log = tmp_path / "demo.log"  # a file, not a pipe: a full pipe would stall the demo
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=monitor_env(tmp_path), cwd=tmp_path, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    accepted = 'cellect_webhook_requests_total{outcome="accepted"}'
    try:
        deadline = time.monotonic() + 30
        filled = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                sites, measured = counts(db)
                filled = sites == 3 and measured >= 3 and scrape(url, accepted) > 0
            except httpx.HTTPError:
                filled = False
            if filled:
                break
            time.sleep(0.25)
        assert filled, "the demo did not fill the database and receive webhooks in 30 s"
        # /healthz, not /readyz: at x600 three poll intervals are 0.3 s of real time.
        assert httpx.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
    output = log.read_text(errors="replace")
    assert code == 0, output[-2000:]
    assert "Traceback" not in output
