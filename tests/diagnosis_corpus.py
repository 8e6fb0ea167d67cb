"""The labelled diagnosis corpus (tests/diagnosis_cases.yaml): configs whose symptoms are
known by construction, run short and untracked, and the verdicts they got. Used by
tests/test_diagnosis_cases.py and benchmarks/diagnosis.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bpstudy.config.compose import compose
from bpstudy.config.validate import validate
from bpstudy.tracking.run import thresholds
from bpstudy.training.outcome import classify
from bpstudy.training.run import train
from bpstudy.training.verdict import verdict_of

CASES_FILE = Path(__file__).with_name("diagnosis_cases.yaml")
QUIET = ["trainer.progress=none", "tracking.enabled=false"]


@dataclass(frozen=True)
class Case:
    name: str
    why: str
    overrides: tuple[str, ...]
    outcome: str  # the expected bpstudy.outcome
    training: str  # the expected bpstudy.training
    symptoms: tuple[str, ...]  # the expected bpstudy.symptoms, exactly


@dataclass(frozen=True)
class Got:
    outcome: str
    training: str
    symptoms: tuple[str, ...]


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    cases = []
    for name, c in yaml.safe_load(path.read_text()).items():
        expect = c["expect"]
        cases.append(Case(name, c["why"], tuple(c.get("overrides", [])), expect["outcome"],
                          expect["training"], tuple(expect.get("symptoms", []))))  # fmt: skip
    return cases


def run_case(case: Case) -> Got:
    config = validate(compose(overrides=[*case.overrides, *QUIET]))
    result = train(config)
    verdict = verdict_of(result, config)
    return Got(classify(result, thresholds(config)), verdict.training, verdict.symptoms)


__all__ = ["CASES_FILE", "Case", "Got", "load_cases", "run_case"]
