"""Operator API and console fixtures: the real monitor app (lifespan on, TestClient) on a
frozen clock, once per module and database backend, with a configured admin token; and
for the browser tests, Debian's Chromium and the demo product (tests.support.browser).

One app serves a module's tests (starting one costs a writer process and a migration):
every test there makes its own silences and reads back only what it made.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser
from starlette.testclient import TestClient

from tests.support.browser import (
    ConsoleTab,
    artefact_dir,
    chromium_browser,
    console_product,
    console_tab,
)
from tests.support.console import sign_out
from tests.support.databases import fresh_postgres_database
from tests.support.operator_api import api_client, api_settings
from tests.support.product import Product


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database kept for one test module."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The monitor's app with a configured admin token, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api')}/cellect-monitor.db"
    else:
        url = str(request.getfixturevalue("module_postgres_url"))
    with api_client(api_settings(url)) as client:
        yield client


@pytest.fixture(scope="module")
def console_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The monitor's app (SQLite, configured admin token) for a module's console tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('console')}/cellect-monitor.db"
    with api_client(api_settings(url)) as client:
        yield client


@pytest.fixture
def console(console_app: TestClient) -> TestClient:
    """That app's client, signed out (no session or login cookie) at the start of a test."""
    sign_out(console_app)
    return console_app


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright, one per module."""
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def demo_product(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """`cellect-monitor run --emulator` (its five sites), one per module, started only when
    a browser is there."""
    with console_product(tmp_path_factory.mktemp("console-demo")) as product:
        yield product


@pytest.fixture
def tab(
    browser: Browser, demo_product: Product, request: pytest.FixtureRequest
) -> Iterator[ConsoleTab]:
    """A signed-out tab on the demo's console; the test fails on any console error."""
    with console_tab(browser, demo_product.url, artefact_dir(request.node.name)) as opened:
        yield opened
    assert not opened.errors, "\n".join(opened.errors)


@pytest.fixture
def signed_in(tab: ConsoleTab) -> ConsoleTab:
    """The same tab, signed in through the login form with the admin token."""
    tab.sign_in()
    return tab
