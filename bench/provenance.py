"""What every result row names: the code revision it ran (and whether that code was committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def revision(tree: str | Path = REPO) -> str:
    """Short commit of ``tree``, with "+uncommitted" when tracked code differs from it (result files,
    this run's own output among them, do not count); "unknown" outside a git checkout."""
    try:
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
