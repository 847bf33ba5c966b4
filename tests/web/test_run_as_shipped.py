"""`cellect-monitor run` as shipped (access log on, configured by CELLECT_ variables only):
the admin token it generates is what `admin token` prints and never shows in its output,
forwarded headers count only from a trusted proxy, and the image's health check answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.running import clean_env, cli, free_port, running_monitor

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SPOOFED = "203.0.113.7"  # TEST-NET-3: nobody's real address
SILENCE = {"matchers": {"rule": "SoCLow"}, "duration": "1h", "comment": "as shipped"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        CELLECT_DATABASE_URL=f"sqlite:///{tmp_path}/monitor.db",
        CELLECT_PORT=str(free_port()),
        **extra,
    )


def _use_the_api(url: str, token: str) -> None:
    """Every kind of API call, right and wrong, each placing the token somewhere."""
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/api/silences").status_code == 401
        assert http.get("/api/silences", params={"token": token}).status_code == 401
        wrong = {"Authorization": f"Bearer {token}x"}
        assert http.get("/api/silences", headers=wrong).status_code == 401
        plain = {**bearer, "Content-Type": "text/plain"}
        assert http.post("/api/silences", content=b"{}", headers=plain).status_code == 415
        made = http.post("/api/silences", json=SILENCE, headers=bearer)
        assert made.status_code == 201, made.text
        assert http.get("/api/silences", headers=bearer).status_code == 200
        bad = http.post("/api/silences", json={**SILENCE, "comment": ""}, headers=bearer)
        assert bad.status_code == 422
        for answer in (made, bad, http.get("/metrics"), http.get("/readyz")):
            assert token not in answer.text


def test_the_generated_admin_token_opens_the_api_and_never_shows_in_the_output(
    tmp_path: Path,
) -> None:
    """Unset, the token is generated on first start; `admin token` prints that very token,
    which opens the API, and no line of the monitor's output (its access log with query
    strings included) ever contains it."""
    env = _env(tmp_path)
    with running_monitor(tmp_path, env) as monitor:
        printed = cli("admin", "token", env=env, cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        token = printed.stdout.strip()
        assert len(token) >= 32
        _use_the_api(monitor.url, token)
    output = monitor.output()
    assert '"GET /api/silences?token=*** HTTP/1.1" 401' in output  # the access log is on
    assert '"POST /api/silences HTTP/1.1" 201' in output
    assert token not in output
    assert token not in printed.stderr


def test_a_spoofed_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path: Path) -> None:
    """As shipped, X-Forwarded-For from the (untrusted) loopback peer is ignored, so the
    webhook allow-list judges 127.0.0.1 and refuses (403); with CELLECT_FORWARDED_ALLOW_IPS
    naming the proxy the header's address is judged: allowed (then 401 for the missing
    secret), and the proxy's own address is refused."""
    spoof = {"X-Forwarded-For": SPOOFED}
    path = "/webhooks/time-series"
    as_shipped = _env(tmp_path, CELLECT_WEBHOOK_ALLOWED_IPS=SPOOFED)
    with running_monitor(tmp_path, as_shipped) as monitor:
        assert httpx.post(monitor.url + path, json={}, headers=spoof).status_code == 403
    behind_proxy = {**_env(tmp_path, CELLECT_WEBHOOK_ALLOWED_IPS=SPOOFED),
                    "CELLECT_FORWARDED_ALLOW_IPS": "127.0.0.1"}  # fmt: skip
    with running_monitor(tmp_path, behind_proxy) as monitor:
        assert httpx.post(monitor.url + path, json={}, headers=spoof).status_code == 401
        assert httpx.post(monitor.url + path, json={}).status_code == 403


def _image_env() -> dict[str, str]:
    """The CELLECT_ variables the Dockerfile's ENV sets."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = re.findall(r"(CELLECT_\w+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", text, re.M)))
    return dict(pairs)


def _health_check() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M)
    assert match is not None
    return [str(word) for word in json.loads(match.group(1))]


def test_the_image_health_check_answers_while_the_api_is_locked(tmp_path: Path) -> None:
    """With the image's environment (listening beyond loopback, as the Dockerfile allows only
    because the API needs the token), the HEALTHCHECK command succeeds and /api/ is 401."""
    image = _image_env()
    assert image["CELLECT_HOST"] == "0.0.0.0"
    port = str(free_port())
    # Loopback and a free port in the test; the database in tmp, not /data.
    env = clean_env(**{**image, "CELLECT_HOST": "127.0.0.1", "CELLECT_PORT": port,
                       "CELLECT_DATABASE_URL": f"sqlite:///{tmp_path}/monitor.db"})  # fmt: skip
    command = [word.replace(":8080/", f":{port}/") for word in _health_check()]
    if command[0] == "python":  # the image's python is this venv's here
        command[0] = sys.executable
    with running_monitor(tmp_path, env) as monitor:
        check = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        assert httpx.get(monitor.url + "/api/silences").status_code == 401
