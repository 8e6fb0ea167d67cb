"""The git commit of the bpstudy source, when it runs from a checkout, and whether the
checkout had uncommitted changes (then the commit alone does not say what ran)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.cache
def git_sha() -> str | None:
    if not (ROOT / ".git").exists():
        return None
    sha = (_git("rev-parse", "HEAD") or "").strip()
    return sha if len(sha) == 40 else None


@functools.cache
def git_dirty() -> bool:
    """Tracked files differ from the commit (untracked files do not count)."""
    if git_sha() is None:
        return False
    return bool((_git("status", "--porcelain", "--untracked-files=no") or "").strip())
