"""The external tools some tests run (promtool, prometheus, chromium): found, or the test
is skipped — or failed when peers are required, as in CI."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_PEERS = bool(os.environ.get("CELLECT_TEST_REQUIRE_PEERS"))
# Debian installs daemons (haproxy) in /usr/sbin, which a user's PATH may lack.
SEARCHED = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])


def require_tool(name: str, package: str = "prometheus") -> str:
    """The path of the executable `name` (from the Debian package `package`); skipped
    without it, failed when peers are required (CI installs them): a missing tool must
    never pass as a skipped check."""
    found = shutil.which(name, path=SEARCHED)
    if found is None:
        reason = f"{name} not installed (Debian package `{package}`)"
        if REQUIRE_PEERS:
            pytest.fail(reason)
        pytest.skip(reason)
    return found
