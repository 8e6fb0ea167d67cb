"""`bpstudy report STUDY` (being written)."""

from __future__ import annotations

from bpstudy.errors import BpstudyError


def main(argv: list[str]) -> None:
    raise BpstudyError("bpstudy report is not available yet")
