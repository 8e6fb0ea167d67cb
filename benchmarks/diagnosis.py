"""How well the training verdict and the outcome read the labelled corpus
(tests/diagnosis_cases.yaml): each case runs short and untracked, then this prints

- the confusion matrix of `bpstudy.training` (rows: the label, columns: the verdict);
- per symptom, how often it was found where labelled and where not (`bpstudy.symptoms`);
- the confusion matrix of `bpstudy.outcome`;
- the cases that disagree with their label, with the label's reason.

    .venv/bin/python benchmarks/diagnosis.py [--only NAME ...]

Exit 0 whatever the agreement: the test (tests/test_diagnosis_cases.py) is the gate.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from diagnosis_corpus import Case, Got, load_cases, run_case  # noqa: E402

from bpstudy.training.outcome import OUTCOMES  # noqa: E402
from bpstudy.training.verdict import SYMPTOMS, VERDICTS  # noqa: E402


def matrix(pairs: list[tuple[str, str]], labels: tuple[str, ...]) -> str:
    counts = collections.Counter(pairs)
    used = [x for x in labels if any(x in p for p in pairs)]
    width = max(len(x) for x in used) + 2
    lines = ["label \\ got".ljust(width) + "".join(x.rjust(width) for x in used)]
    for row in used:
        cells = "".join(str(counts[(row, col)] or ".").rjust(width) for col in used)
        lines.append(row.ljust(width) + cells)
    return "\n".join(lines)


def symptom_table(results: list[tuple[Case, Got]]) -> str:
    lines = [f"{'symptom':12} {'labelled':>9} {'found':>6} {'missed':>7} {'extra':>6}"]
    for s in SYMPTOMS:
        labelled = sum(s in c.symptoms for c, _ in results)
        found = sum(s in c.symptoms and s in g.symptoms for c, g in results)
        extra = sum(s not in c.symptoms and s in g.symptoms for c, g in results)
        lines.append(f"{s:12} {labelled:>9} {found:>6} {labelled - found:>7} {extra:>6}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    args = parser.parse_args()
    cases = [c for c in load_cases() if not args.only or c.name in args.only]
    results: list[tuple[Case, Got]] = []
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        print(f"\r{i}/{len(cases)} {case.name:30}", end="", file=sys.stderr, flush=True)
        results.append((case, run_case(case)))
    print(f"\r{len(cases)} cases in {time.perf_counter() - start:.0f} s" + " " * 30,
          file=sys.stderr)  # fmt: skip
    agree = sum(c.training == g.training for c, g in results)
    print(f"training verdict: {agree}/{len(results)} as labelled\n")
    print(matrix([(c.training, g.training) for c, g in results], VERDICTS), end="\n\n")
    print(symptom_table(results), end="\n\n")
    agree = sum(c.outcome == g.outcome for c, g in results)
    print(f"outcome: {agree}/{len(results)} as labelled\n")
    print(matrix([(c.outcome, g.outcome) for c, g in results], OUTCOMES), end="\n\n")
    wrong = [(c, g) for c, g in results if Got(c.outcome, c.training, c.symptoms) != g]
    for c, g in wrong:
        print(f"{c.name}: labelled {c.outcome}/{c.training} [{', '.join(c.symptoms)}], "
              f"got {g.outcome}/{g.training} [{', '.join(g.symptoms)}]: {c.why}")  # fmt: skip
    if not wrong:
        print("every case as labelled")


if __name__ == "__main__":
    main()
