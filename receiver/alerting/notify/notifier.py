"""The Apprise notifier: the configured targets, routing by tag, one send per target, redaction.

Targets come from `CELLECT_APPRISE_URLS` (plain Apprise URLs) and/or
`CELLECT_APPRISE_CONFIG` (an Apprise YAML or TEXT config file, where targets carry tags).

Routing. A notification of severity S goes to every target tagged S ("critical",
"warning", "info"), to every target tagged "always", and to every target without tags.
That last part is ours, not Apprise's: `Apprise.notify(tag=...)` skips untagged
services whenever a tag filter is given (apprise/utils/logic.py `is_exclusive_match`:
no tags only match an empty filter), and "a URL with no tag gets everything" is what a
user who pasted one URL expects. So we select targets ourselves and send to each one
separately; that also gives per-target outcomes (`alerts test`, the outbox).

Secrets. A target is only ever named by its `id` (a hash of its full URL) and `label`
(Apprise's `url(privacy=True)`, which masks passwords and tokens). A logging filter on
the "apprise" logger also scrubs every secret fragment of the configured URLs from
Apprise's own log records.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import apprise
from apprise.common import MATCH_ALL_TAG
from pydantic import SecretStr

from receiver.alerting.model import Severity
from receiver.runtime.redaction import FragmentScrubber, install_filter

if TYPE_CHECKING:
    from receiver.settings import Settings

ALWAYS_TAG = "always"
_SPLIT = re.compile(r"[/:@?&=,;#\s]+")
_MIN_SECRET_LEN = 4


class NotifierConfigError(ValueError):
    """The Apprise URLs or config file cannot be used (never quotes a URL)."""


@dataclass(frozen=True)
class Target:
    """One notification service; `id` and `label` are safe to log and store."""

    id: str
    label: str
    tags: frozenset[str]
    server: Any  # apprise NotifyBase

    def accepts(self, tag: str) -> bool:
        return not self.tags or tag in self.tags or ALWAYS_TAG in self.tags


@dataclass(frozen=True)
class SendResult:
    target_id: str
    label: str
    ok: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (the target is gone)


# The secret fragments of every configured URL, masked in Apprise's log records (the
# filter is installed on the "apprise" logger when the first target is configured).
REDACTOR = FragmentScrubber()


def secret_fragments(full_url: str, private_url: str) -> set[str]:
    """The parts of `full_url` that Apprise's privacy view hides (passwords, tokens)."""
    shown = {unquote(p) for p in _SPLIT.split(private_url)}
    parts = {unquote(p) for p in _SPLIT.split(full_url)} | set(_SPLIT.split(full_url))
    return {p for p in parts if len(p) >= _MIN_SECRET_LEN and p not in shown}


def _target(server: Any) -> Target:
    full, private = server.url(privacy=False), server.url(privacy=True)
    REDACTOR.fragments |= secret_fragments(full, private)
    install_filter("apprise", REDACTOR)
    label = private.split("?", 1)[0]  # the options only add noise
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    tags = frozenset(str(t) for t in (server.tags or ()))
    return Target(id=digest, label=label, tags=tags, server=server)


def _load(urls: Sequence[SecretStr], config: Path | None) -> apprise.Apprise:
    # Apprise imports its plugins on first use; on Python 3.11 its email plugin imports
    # the deprecated `imghdr`, a warning that is Apprise's to fix, not the operator's.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        return _load_bundle(urls, config)


def _load_bundle(urls: Sequence[SecretStr], config: Path | None) -> apprise.Apprise:
    asset = apprise.AppriseAsset(storage_mode="memory")
    bundle = apprise.Apprise(asset=asset)
    for index, url in enumerate(urls, start=1):
        if not bundle.add(url.get_secret_value()):
            raise NotifierConfigError(
                f"CELLECT_APPRISE_URLS entry {index} is not a URL Apprise understands"
            )
    if config is not None:
        _add_config(bundle, config, asset)
    return bundle


def _add_config(bundle: apprise.Apprise, path: Path, asset: Any) -> None:
    if not path.is_file():
        raise NotifierConfigError(f"CELLECT_APPRISE_CONFIG: no such file: {path}")
    loaded = apprise.AppriseConfig(asset=asset)
    if not loaded.add(str(path)) or not bundle.add(loaded):
        raise NotifierConfigError(f"CELLECT_APPRISE_CONFIG: cannot read {path}")


class Notifier:
    """The configured Apprise targets and how to reach each of them."""

    def __init__(self, urls: Sequence[SecretStr] = (), config: Path | None = None) -> None:
        bundle = _load(urls, config)
        self._targets = {t.id: t for t in map(_target, bundle.find(tag=MATCH_ALL_TAG))}
        if config is not None and not self._targets and not urls:
            raise NotifierConfigError(f"CELLECT_APPRISE_CONFIG: no usable URL in {config}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        return cls(settings.apprise_urls, settings.apprise_config)

    @property
    def targets(self) -> list[Target]:
        return list(self._targets.values())

    def targets_for(self, severity: Severity | str) -> list[Target]:
        """The targets a notification of `severity` is routed to (see the module docstring)."""
        return [t for t in self._targets.values() if t.accepts(str(severity))]

    def target(self, target_id: str) -> Target | None:
        return self._targets.get(target_id)

    def send(self, target_id: str, title: str, body: str, kind: str) -> SendResult:
        """Deliver to one target (blocking: call it from a worker thread).

        `kind` is the severity, or "resolved"; it picks Apprise's notify type (colour, icon).
        """
        target = self._targets.get(target_id)
        if target is None:
            gone = "target no longer configured"
            return SendResult(target_id, "?", ok=False, error=gone, permanent=True)
        notify_type = _NOTIFY_TYPES.get(kind, apprise.NotifyType.INFO)
        try:
            ok = bool(target.server.notify(body=body, title=title, notify_type=notify_type))
        except Exception as exc:  # a plugin bug must not kill the delivery worker
            return SendResult(target.id, target.label, ok=False, error=type(exc).__name__)
        error = None if ok else f"{target.label.split(':', 1)[0]} target refused the notification"
        return SendResult(target.id, target.label, ok=ok, error=error)

    def send_test(self, title: str, body: str) -> list[SendResult]:
        return [self.send(t.id, title, body, Severity.INFO) for t in self._targets.values()]


_NOTIFY_TYPES = {
    "critical": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
    "info": apprise.NotifyType.INFO,
    "resolved": apprise.NotifyType.SUCCESS,
}


def scrub(text: str) -> str:
    """`text` with every known secret fragment of the configured URLs masked."""
    return REDACTOR.scrub(text)


def describe(targets: Iterable[Target]) -> list[dict[str, object]]:
    return [{"id": t.id, "target": t.label, "tags": sorted(t.tags)} for t in targets]
