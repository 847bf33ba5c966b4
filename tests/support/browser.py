"""The console in a real browser: headless Chromium (Debian's `chromium`, never a browser
Playwright downloads) driven by Playwright, against the product started as a user starts
the demo — `cellect-monitor run --emulator`, configured by environment variables, on free
ports.

    with console_product(workdir) as product, chromium_browser() as browser:
        with console_tab(browser, product.url, artefacts) as tab:
            tab.sign_in()
            tab.goto("/service")
            tab.screenshot("service")     # test-artifacts/<test>/service.png
        tab.errors                        # console errors and uncaught exceptions

Every message the page logs at level error (a failed load, a CSP violation, a script
error) and every uncaught exception is collected; the fixtures fail the test on any.
Chromium logs a 4xx answer as an error too: a test that asks for one says so
(`tab.refused_as_expected(401)`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from playwright.sync_api import Response as PageResponse

from tests.support.operator_api import ADMIN_TOKEN
from tests.support.product import ROOT, Product, free_port
from tests.support.prometheus import Emulator, exported, wait_for
from tests.support.tools import require_tool

ARTIFACTS = ROOT / "test-artifacts"  # gitignored: screenshots of the pages the tests saw
DEMO_LOGIN = re.compile(r"console: (http://\S+/login\?code=\S+)")
DEMO_SPEED = "60"


def artefact_dir(test_name: str) -> Path:
    """test-artifacts/<the test's name, made a file name>/, created."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def console_product(workdir: Path) -> Iterator[Product]:
    """`cellect-monitor run --emulator --speed 60` with a known admin token, until SIGTERM."""
    product = Product(
        workdir,
        "--emulator", "--emulator-port", str(free_port()), "--speed", DEMO_SPEED,
        CELLECT_DATABASE_URL=f"sqlite:///{workdir}/monitor.db",
        CELLECT_ADMIN_TOKEN=ADMIN_TOKEN,
    )  # fmt: skip
    # Product.start is a coroutine; Playwright's sync API owns this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, product.start()).result()
    try:
        yield product
    finally:
        try:
            product.terminate()
        finally:
            product.stop()


def emulator_url(product: Product) -> str:
    """The demo's embedded emulator (its control API: `/_emulator/...`)."""
    args = list(product.args)
    return f"http://127.0.0.1:{args[args.index('--emulator-port') + 1]}"


def post_schedule(product: Product, site_id: int) -> None:
    """Post two quarter-hours of 5 kW to a demo site through the public API, as a partner's
    trader would (tests.support.prometheus.Emulator), and wait (bounded) until the monitor
    has accepted a delivery: the box stores them and the emulator posts their status
    webhook at once. (The demo trader's own first post comes before the monitor's
    subscription, and its next changes may be emulated hours away.)"""
    emulator = Emulator(emulator_url(product))
    try:
        emulator.post_schedule(site_id, 5.0, 0.5, entries=2)
    finally:
        emulator.close()
    target = product.url.removeprefix("http://")
    accepted = 'cellect_webhook_requests_total{outcome="accepted"}'
    wait_for(
        lambda: (exported(target, accepted) or 0) > 0,
        within=60,
        what="the monitor to store a delivery of the post",
    )


def demo_login_url(product: Product, within: float = 60.0) -> str:
    """The one-time sign-in URL the demo printed (bounded wait for the line)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = DEMO_LOGIN.search(product.output())
        if found is not None:
            return found.group(1)
        time.sleep(0.1)  # a bounded poll for a line in a log file
    raise AssertionError(f"no console sign-in URL within {within} s:\n{product.tail()}")


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Headless Debian Chromium (skipped without it, failed in CI where it is required)."""
    executable = require_tool("chromium", package="chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleTab:
    """One tab of its own browser context (its own cookies) on the console."""

    def __init__(self, context: BrowserContext, artefacts: Path) -> None:
        self.context, self.artefacts = context, artefacts
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text} ({message.location})")

    def goto(self, path: str) -> PageResponse:
        answer = self.page.goto(path)
        assert answer is not None, path
        return answer

    def sign_in(self, token: str = ADMIN_TOKEN, path: str = "/") -> None:
        """Through the login form, as a person would."""
        self.goto(f"/login?next={path}")
        self.page.fill("#token", token)
        with self.page.expect_navigation():
            self.page.click("form.login button[type=submit]")

    def refused_as_expected(self, status: int) -> None:
        """Drop the console error Chromium logs for a response of `status` that the test
        asked for (a wrong token's 401, a cross-site 403); there must be one."""
        marker = f"the server responded with a status of {status} "
        # Chromium reports the console message a moment after the response: let
        # Playwright dispatch events (bounded: 100 turns of 50 ms) until it is there.
        for _ in range(100):
            if any(marker in e for e in self.errors):
                break
            self.page.wait_for_timeout(50)
        kept = [e for e in self.errors if marker not in e]
        assert len(kept) < len(self.errors), f"no {status} answer was logged: {self.errors}"
        self.errors = kept

    def screenshot(self, name: str) -> Path:
        path = self.artefacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def console_tab(
    browser: Browser, base_url: str, artefacts: Path, **options: Any
) -> Iterator[ConsoleTab]:
    """A fresh context (no cookies) on `base_url`; its last screen saved as last.png."""
    context = browser.new_context(base_url=base_url, **options)
    tab = ConsoleTab(context, artefacts)
    try:
        yield tab
    finally:
        try:
            tab.screenshot("last")
        finally:
            context.close()
