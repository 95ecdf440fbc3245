"""The layers are enforced: `lint-imports` checks the contracts in .importlinter (a lower layer never imports a
higher one; production never imports the benchmarks)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency (pyproject [test])"
    run = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
