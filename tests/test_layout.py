"""The import rules of docs/decisions.md hold, and import-linter would catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_the_import_contracts_hold() -> None:
    """Every contract in pyproject.toml is kept by the code as it is."""
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path) -> None:
    """The storage layer importing the emulator breaks two contracts; the check fails."""
    shutil.copytree(ROOT / "receiver", tmp_path / "receiver")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    engine = tmp_path / "receiver" / "storage" / "engine.py"
    engine.write_text(engine.read_text() + "\nimport receiver.emulator.cloud  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "The service never imports the emulator" in result.stdout
    assert "BROKEN" in result.stdout
    assert "receiver.storage.engine -> receiver.emulator.cloud" in result.stdout
