"""The Apprise notifier: targets from URLs and config files, routing, redaction, `alerts test`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from receiver.alerting.model import Severity
from receiver.alerting.notify.notifier import Notifier, NotifierConfigError, scrub
from receiver.cli import main
from tests.support.sinks import HttpSink

TOKEN = "tok3n-VERY-secret"


def test_untagged_targets_get_everything_tagged_ones_their_severity(tmp_path: Path) -> None:
    """Severity tags route; untagged and `always` targets receive every severity."""
    config = tmp_path / "apprise.yml"
    config.write_text(
        "urls:\n"
        "  - json://127.0.0.1:9/crit:\n"
        "      tag: critical\n"
        "  - json://127.0.0.1:9/warn:\n"
        "      tag: warning\n"
        "  - json://127.0.0.1:9/all:\n"
        "      tag: always\n"
    )
    notifier = Notifier([SecretStr("json://127.0.0.1:9/plain")], config)
    paths = {
        s: sorted(t.label.rsplit("/", 1)[1] for t in notifier.targets_for(s)) for s in Severity
    }
    assert paths[Severity.CRITICAL] == ["all", "crit", "plain"]
    assert paths[Severity.WARNING] == ["all", "plain", "warn"]
    assert paths[Severity.INFO] == ["all", "plain"]


def test_text_config_with_tags(tmp_path: Path) -> None:
    """An Apprise TEXT config (`tag=url`) is read the same way."""
    config = tmp_path / "apprise.txt"
    config.write_text("critical=json://127.0.0.1:9/a\njson://127.0.0.1:9/b\n")
    notifier = Notifier(config=config)
    assert [sorted(t.tags) for t in notifier.targets] == [["critical"], []]


def test_bad_url_is_named_by_position_not_quoted() -> None:
    """An unusable URL is reported by its position in CELLECT_APPRISE_URLS, without its text."""
    with pytest.raises(NotifierConfigError, match="entry 2") as caught:
        Notifier([SecretStr("json://127.0.0.1:9/x"), SecretStr(f"nosuchscheme://{TOKEN}")])
    assert TOKEN not in str(caught.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config path that does not exist names CELLECT_APPRISE_CONFIG."""
    with pytest.raises(NotifierConfigError, match="CELLECT_APPRISE_CONFIG"):
        Notifier(config=tmp_path / "missing.yml")


def test_labels_hide_secrets_and_scrub_masks_them() -> None:
    """Target labels use Apprise's privacy view; `scrub` removes the secret from any text."""
    notifier = Notifier([SecretStr(f"json://user:{TOKEN}@127.0.0.1:9/x")])
    [target] = notifier.targets
    assert TOKEN not in target.label
    assert TOKEN not in scrub(f"failed for json://user:{TOKEN}@127.0.0.1:9/x")


def test_alerts_test_reports_each_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alerts test` sends to every target and prints per target whether it worked."""
    with HttpSink() as good, HttpSink() as bad:
        bad.fail_with(500)
        urls = [good.url("/ok"), bad.url("/down")]
        secret = [u.replace("http://", f"json://user:{TOKEN}@") for u in urls]
        monkeypatch.setenv("CELLECT_APPRISE_URLS", " ".join(secret))
        assert main(["alerts", "test"]) == 1
        assert good.accepted[0].json()["title"] == "cellect-monitor: test notification"
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok ")
    assert out[0].endswith("/ok")
    assert out[1].startswith("FAILED")
    assert TOKEN not in "".join(out)


def test_alerts_test_without_targets_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no target configured, `alerts test` says what to set (exit status 2)."""
    monkeypatch.delenv("CELLECT_APPRISE_URLS", raising=False)
    monkeypatch.delenv("CELLECT_APPRISE_CONFIG", raising=False)
    assert main(["alerts", "test"]) == 2
    assert "CELLECT_APPRISE_URLS" in capsys.readouterr().err
