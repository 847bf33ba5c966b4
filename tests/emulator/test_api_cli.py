"""`cellect-monitor emulator` serves the API on a real loopback port, from a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from receiver.cellect.timestamps import format_timestamp
from tests.support.sinks import HttpSink

TOKEN = "cli-refresh-token-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> float:
    """Poll the control API until it answers (bounded); returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert process.poll() is None, "the emulator exited early"
        try:
            if httpx.get(f"{base}/_emulator/clock", timeout=0.5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the emulator did not become ready in time")


@pytest.fixture
def emulator_url(sink: HttpSink) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "receiver", "emulator", "--port", str(port)]
    command += ["--sites", "2", "--seed", "3", "--refresh-token", TOKEN, "--speed", "1"]
    command += ["--webhook-url", sink.url("/hook?token=hook-secret")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert TOKEN.encode() not in stderr
        assert b"hook-secret" not in stderr


def test_cli_serves_token_store_and_read_back(emulator_url: str, sink: HttpSink) -> None:
    """The served emulator exchanges the pre-issued token, stores a post, reads it back, and
    reports it to the webhook URL given on the command line."""
    with httpx.Client(base_url=emulator_url, timeout=5.0) as http:
        answer = http.post("/v1/access-token", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        headers = {"Authorization": f"Bearer {answer.json()['accessToken']}"}
        now = datetime.now(UTC).replace(microsecond=0)
        start, end = now + timedelta(minutes=30), now + timedelta(minutes=45)
        body = {
            "data": [
                {
                    "startDate": format_timestamp(start),
                    "endDate": format_timestamp(end),
                    "essPowerAC": -10,
                }
            ]
        }
        stored = http.post(
            "/v1/resources/sites/1/time-series",
            params={"symbol": "EssPowerAC"},
            json=body,
            headers=headers,
        )
        assert stored.status_code == 200, stored.text
        params = {
            "symbol": "ExAnteInformationEssPowerAC",
            "startDate": format_timestamp(now),
            "endDate": format_timestamp(now + timedelta(hours=1)),
        }
        read = http.get("/v1/resources/sites/1/time-series", params=params, headers=headers)
        assert read.status_code == 200
        [result] = read.json()["results"]
        assert result["startDate"] == format_timestamp(start)
        assert result["essPowerAC"] == -10
    [webhook] = sink.wait_for(1)
    assert (webhook.path, webhook.query) == ("/hook", "token=hook-secret")
    assert webhook.json()["schedule"][0]["status"] == 1


def test_cli_logs_its_url_and_is_ready_quickly() -> None:
    """With --port 0 the emulator logs the URL it picked within 2 seconds of starting."""
    command = [sys.executable, "-m", "receiver", "emulator", "--port", "0", "--sites", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        started = time.monotonic()
        line = process.stderr.readline().decode()
        while "listening on" not in line and time.monotonic() - started < 10:
            line = process.stderr.readline().decode()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[-1].strip()
        _wait_ready(url, process)
        # Target: 2 s (measured ~1.2 s); Python start-up and imports take most of it, and a
        # shared CI machine may be slower, so the bound here is looser.
        assert time.monotonic() - started < 2.0 + 3.0
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_cli_refuses_bad_arguments() -> None:
    """Bad arguments are a one-line error and exit status 2."""
    command = [sys.executable, "-m", "receiver", "emulator", "--webhook-secret", "s3cret-value"]
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"--webhook-secret needs --webhook-url" in result.stderr
    assert b"s3cret-value" not in result.stderr
