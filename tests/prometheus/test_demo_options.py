"""`cellect-monitor run --refresh-token-days D`, the demo option the end-to-end scenario
starts the monitor with so that RefreshTokenExpiring fires: parsed, defaulted, documented
in the help, and refused with one clear line when it is not a sensible lifetime; and
`--emulator-host`, which docker-compose.yml uses to publish the emulator's port."""

from __future__ import annotations

import pytest

from receiver.cli import build_parser, main
from receiver.commands.run import loopback_if_wildcard


def test_refresh_token_days_defaults_to_a_year() -> None:
    """Without the option the demo's refresh token lives 365 days, as before."""
    args = build_parser().parse_args(["run", "--emulator"])
    assert args.refresh_token_days == 365


def test_refresh_token_days_is_parsed_as_days() -> None:
    """`--refresh-token-days 3` (or a fraction of a day) reaches the handler as a number."""
    parser = build_parser()
    assert (
        parser.parse_args(["run", "--emulator", "--refresh-token-days", "3"]).refresh_token_days
        == 3
    )
    assert parser.parse_args(["run", "--refresh-token-days", "0.5"]).refresh_token_days == 0.5


def test_refresh_token_days_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` names the option and what it is for."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--refresh-token-days D" in out
    assert "refresh token expires D emulated days" in out


@pytest.mark.parametrize("days", ["0", "-1", "nan", "1e9"])
def test_a_senseless_refresh_token_life_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], days: str
) -> None:
    """A lifetime that is not positive, not a number or beyond a century exits 2 with one
    line naming the option, before anything is started."""
    assert main(["run", "--emulator", "--refresh-token-days", days]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cellect-monitor: --refresh-token-days must be > 0 and <= 36500"]


def test_a_non_number_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """`--refresh-token-days soon` is an argparse usage error naming the option."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "--refresh-token-days", "soon"])
    assert exited.value.code == 2
    assert "--refresh-token-days" in capsys.readouterr().err


def test_emulator_host_defaults_to_loopback() -> None:
    """Without `--emulator-host` the demo's emulator listens on 127.0.0.1 only, as before."""
    assert build_parser().parse_args(["run", "--emulator"]).emulator_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("listening", "called"),
    [
        ("http://0.0.0.0:8081", "http://127.0.0.1:8081"),
        ("http://[::]:8081", "http://[::1]:8081"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://monitor:8080", "http://monitor:8080"),
    ],
)
def test_a_server_listening_everywhere_is_called_on_loopback(listening: str, called: str) -> None:
    """The demo calls its emulator (and receives its webhooks) on loopback when either
    listens on a wildcard address; other addresses and names are called as they are."""
    assert loopback_if_wildcard(listening) == called
