"""`cellect-monitor schedule validate|post`: the vendor's rules on the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from receiver.cli import main

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _body(start: datetime, power: float = 50.0) -> dict[str, object]:
    end = start + timedelta(minutes=15)
    return {
        "data": [
            {
                "startDate": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endDate": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "essPowerAC": power,
            }
        ]
    }


def test_validate_accepts_a_valid_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schedule within all rules is reported valid with exit status 0."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_body(NOW + timedelta(minutes=10))))
    code = main(["schedule", "validate", str(path), "--now", "2026-03-02T08:00:00Z",
                 "--rated-charge", "100", "--rated-discharge", "100"])  # fmt: skip
    assert code == 0
    assert "valid: 1 entries" in capsys.readouterr().out


def test_validate_lists_every_violation_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Too soon and above the rated discharge: both codes, and exit status 1."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_body(NOW + timedelta(minutes=1), power=500)))
    code = main(["schedule", "validate", str(path), "--now", "2026-03-02T08:00:00Z",
                 "--rated-charge", "100", "--rated-discharge", "100"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "30091 data[0].startDate" in out
    assert "30114 data[0].essPowerAC" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json"], "cannot read missing.json"),
        (["bad.json"], "bad.json is not JSON"),
        (["good.json", "--now", "yesterday"], "--now must be"),
    ],
)
def test_validate_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """Unreadable files, non-JSON and bad flags give one clear line and exit status 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "good.json").write_text(json.dumps(_body(NOW)))
    assert main(["schedule", "validate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture
def emulator_url() -> Iterator[str]:
    """A real emulator process on a free loopback port with a known refresh token."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "emulator", "--port", "0", "--sites", "2",
         "--refresh-token", "cli-test-refresh-token"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    url = None
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        url = found.group(1) if found else None
    try:
        assert url, "the emulator did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_post_sends_a_valid_schedule_and_refuses_a_bad_one_locally(
    emulator_url: str, tmp_path: Path
) -> None:
    """`schedule post` validates with the site's ratings, then stores; a bad plan never leaves."""
    env = {**os.environ, "CELLECT_API_URL": emulator_url, "CELLECT_TOKEN_URL": emulator_url,
           "CELLECT_REFRESH_TOKEN": "cli-test-refresh-token"}  # fmt: skip
    start = (datetime.now(UTC) + timedelta(minutes=20)).replace(second=0, microsecond=0)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_body(start, power=1.0)))
    bad.write_text(json.dumps(_body(start, power=1e9)))
    ok = subprocess.run([sys.executable, "-m", "receiver", "schedule", "post", "1", str(good)],
                        env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "posted 1 entries to site 1" in ok.stdout
    refused = subprocess.run([sys.executable, "-m", "receiver", "schedule", "post", "1", str(bad)],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "30114" in refused.stdout
    auth = {"Authorization": "Bearer cli-test-refresh-token"}
    token = httpx.post(f"{emulator_url}/v1/access-token", headers=auth).json()
    window = {"symbol": "ExAnteInformationEssPowerAC",
              "startDate": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "endDate": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    auth = {"Authorization": f"Bearer {token['accessToken']}"}
    url = f"{emulator_url}/v1/resources/sites/1/time-series"
    stored = httpx.get(url, params=window, headers=auth).json()
    assert [r["essPowerAC"] for r in stored["results"]] == [1.0]


def test_delete_removes_the_entries_not_started_and_refuses_a_backwards_window(
    emulator_url: str, tmp_path: Path
) -> None:
    """`schedule delete` deletes a posted entry that has not started (ExAnte then shows it
    4 Deleted); END before START is a clear error before anything is sent."""
    env = {**os.environ, "CELLECT_API_URL": emulator_url, "CELLECT_TOKEN_URL": emulator_url,
           "CELLECT_REFRESH_TOKEN": "cli-test-refresh-token"}  # fmt: skip
    start = (datetime.now(UTC) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    body = tmp_path / "plan.json"
    body.write_text(json.dumps(_body(start, power=2.0)))
    cli = [sys.executable, "-m", "receiver", "schedule"]
    posted = subprocess.run([*cli, "post", "2", str(body)], env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    first, last = (
        start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    backwards = subprocess.run([*cli, "delete", "2", last, first], env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
    assert backwards.returncode == 2
    assert "END must be after START" in backwards.stderr
    deleted = subprocess.run([*cli, "delete", "2", first, last], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted the entries of site 2 between {first} and {last}" in deleted.stdout
    auth = {"Authorization": "Bearer cli-test-refresh-token"}
    token = httpx.post(f"{emulator_url}/v1/access-token", headers=auth).json()
    window = {"symbol": "ExAnteInformationEssPowerAC", "startDate": first, "endDate": last}
    auth = {"Authorization": f"Bearer {token['accessToken']}"}
    url = f"{emulator_url}/v1/resources/sites/2/time-series"
    stored = httpx.get(url, params=window, headers=auth).json()
    assert [r["implementationStatus"] for r in stored["results"]] == [4]


def test_validate_against_a_site_reports_the_breach_before_anything_is_posted(
    emulator_url: str, tmp_path: Path
) -> None:
    """With `--site`, a plan that would empty the site's battery (100 kWh at 50 %, √0.92
    each way: 27·√0.92 kW draws 27 kWh/h, so 45 kWh last 100 minutes) is reported with
    the minute, the entry and the shortfall (P·20 min), exit 1; a plan within the limits
    holds, exit 0."""
    env = {**os.environ, "CELLECT_API_URL": emulator_url, "CELLECT_TOKEN_URL": emulator_url,
           "CELLECT_REFRESH_TOKEN": "cli-test-refresh-token"}  # fmt: skip
    eta = 0.92**0.5
    battery = {"capacityKwh": 100.0, "socPct": 50.0, "ratedChargeKw": 50.0,
               "ratedDischargeKw": 50.0, "chargeEfficiency": eta,
               "dischargeEfficiency": eta}  # fmt: skip
    httpx.post(f"{emulator_url}/_emulator/sites/1/battery", json=battery).raise_for_status()
    start = (datetime.now(UTC) + timedelta(minutes=20)).replace(second=0, microsecond=0)
    power = 27 * eta
    quarters = [_body(start + i * timedelta(minutes=15), power)["data"] for i in range(8)]
    draining, holding = tmp_path / "draining.json", tmp_path / "holding.json"
    draining.write_text(json.dumps({"data": [q[0] for q in quarters]}))  # type: ignore[index]
    holding.write_text(json.dumps(_body(start, power=20.0)))

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "receiver", "schedule", "validate", str(path),
                   "--site", "1"]  # fmt: skip
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    refused = validate(draining)
    assert refused.returncode == 1, refused.stderr
    breach = (start + timedelta(minutes=100)).strftime("%Y-%m-%dT%H:%M:%S")
    seventh = (start + timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"empties at {breach}" in refused.stdout
    assert f"during the entry {seventh}" in refused.stdout
    assert f"shortfall {power / 3:.1f} kWh" in refused.stdout
    assert "from -4.0% to 50.0%" in refused.stdout
    held = validate(holding)
    assert held.returncode == 0, held.stdout + held.stderr
    assert "the plan holds" in held.stdout
