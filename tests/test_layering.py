"""The house's layering (`.importlinter`): every dependency points down, checked by import-linter.

An upward import anywhere (a lazy one inside a function included) fails this test and so CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_every_layering_contract_is_kept():
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed (requirements.txt pins it)"
    out = subprocess.run([exe, "--no-cache", "--no-logo", os.path.join(ROOT, ".importlinter")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " 0 broken" in out.stdout, out.stdout[-2000:]
