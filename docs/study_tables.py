"""The tables of docs/studies.md, from the finished shipped studies in a folder (its
bpstudy.journal and mlflow.db): `make figures` writes them to .figures-work/tables.md;
by hand, after the sweeps:

    python docs/study_tables.py [FOLDER]

Each cell is the run's final value, as `bpstudy report`'s trials.csv holds it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from mlflow import MlflowClient

RULES = ("backprop", "feedback_alignment", "direct_feedback_alignment")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class Studies:
    def __init__(self, folder: Path) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        backend = optuna.storages.journal.JournalFileBackend(str(folder / "bpstudy.journal"))
        self.storage = optuna.storages.JournalStorage(backend)
        self.client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        self.folder = folder

    def cells(self, study: str) -> dict[tuple, tuple]:
        """params (sorted by name) -> (trial, run metrics, run tags), finished trials."""
        out = {}
        for t in optuna.load_study(study_name=study, storage=self.storage).trials:
            if t.state in FINISHED and "mlflow_run_id" in t.user_attrs:
                run = self.client.get_run(t.user_attrs["mlflow_run_id"])
                out[tuple(sorted(t.params.items()))] = (t, run.data.metrics, run.data.tags)
        return out

    def layers(self, run_id: str) -> pd.DataFrame:
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, "diagnostics/layers.parquet", tmp)
            return pd.read_parquet(path)


def _get(cells: dict, **params) -> tuple:
    key = tuple(sorted(params.items()))
    return cells[key]


def _accuracy(metrics: dict, tags: dict, ratio: float | None = None, tag_outcome=True) -> str:
    if tags.get("bpstudy.outcome") == "diverged":
        return f"diverged, step {tags['bpstudy.diverged_step']}"
    text = f"{metrics['val/accuracy']:.2f}"
    if ratio is not None:
        text += f" ({'n/a' if np.isnan(ratio) else f'{ratio:+.1f}'})"
    outcome = tags.get("bpstudy.outcome")
    if tag_outcome and outcome not in ("healthy", None):
        text += f" {outcome}"
    return text


def _flow_ratio(metrics: dict) -> float:
    """log10 of the first over the last hidden layer's final gradient norm, as the
    report's sentences read it (bpstudy.report.reading.run_flow_ratios)."""
    from bpstudy.report.reading import run_flow_ratios

    norms = sorted((int(k[len("grad_norm/L") :]), v) for k, v in metrics.items()
                   if k.startswith("grad_norm/L"))  # fmt: skip
    values = np.array([[v for _, v in norms]], dtype=float)
    return float(run_flow_ratios(values)[0]) if norms else float("nan")


def vanishing(s: Studies) -> list[str]:
    cells, lines = s.cells("vanishing_gradients"), []
    for lr in (0.1, 0.01):
        lines += [f"lr {lr}:", "", "| activation | init | depth 5 | depth 10 | depth 20 | depth 40 |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for act in ("sigmoid", "tanh", "softsign", "relu"):
            for init in ("standard", "xavier_normal", "he_normal"):
                row = []
                for depth in (5, 10, 20, 40):
                    _, m, tags = _get(cells, **{"model.activation": act, "model.init.scheme": init,
                                                "model.depth": depth, "optimizer.lr": lr})  # fmt: skip
                    row.append(_accuracy(m, tags, m.get("grad_norm/ratio_log10"), False))
                lines.append(f"| {act} | {init} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def residual(s: Studies) -> list[str]:
    cells = s.cells("residual_depth")
    depths = (10, 20, 30, 50, 75, 100)
    lines = ["| residual | batch norm | depth 10 | 20 | 30 | 50 | 75 | 100 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for res in (False, True):
        for bn in (False, True):
            row = []
            for depth in depths:
                _, m, tags = _get(cells, **{"model.residual.enabled": res, "model.batch_norm": bn,
                                            "model.depth": depth})  # fmt: skip
                row.append(_accuracy(m, tags, None if "val/accuracy" not in m else _flow_ratio(m)))
            lines.append(
                f"| {'on' if res else 'off'} | {'on' if bn else 'off'} | " + " | ".join(row) + " |"
            )
    return [*lines, ""]


def exploding(s: Studies) -> list[str]:
    cells = s.cells("exploding")
    lines = [
        "| clipping | lr | sigma_w 1.0 | 1.414 | 2.0 | 3.0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in ("none", "norm", "value"):
        for lr in (0.01, 0.1, 1.0):
            row = []
            for sigma in (1.0, 1.414, 2.0, 3.0):
                _, m, tags = _get(cells, **{"trainer.clip.mode": mode, "optimizer.lr": lr,
                                            "model.init.sigma_w": sigma})  # fmt: skip
                row.append(_accuracy(m, tags))
            lines.append(f"| {mode} | {lr} | " + " | ".join(row) + " |")
    return [*lines, ""]


def learning_rules(s: Studies) -> list[str]:
    cells = s.cells("learning_rules")
    keys = [(a, d) for a in ("tanh", "relu") for d in (2, 4, 8, 16)]

    def cell(act, depth, rule):
        return _get(cells, **{"model.activation": act, "model.depth": depth, "learning_rule": rule})

    lines = ["| activation | depth | backprop val loss / acc | FA val loss / acc | DFA val loss / acc |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for act, depth in keys:
        row = []
        for rule in RULES:
            _, m, tags = cell(act, depth, rule)
            if tags.get("bpstudy.outcome") == "diverged":
                row.append(f"diverged (step {tags['bpstudy.diverged_step']})")
            else:
                row.append(f"{m['val/loss']:.3f} / {m['val/accuracy']:.3f}")
        lines.append(f"| {act} | {depth} | " + " | ".join(row) + " |")
    lines += ["", "| activation | depth | FA alignment start -> end | FA layer 1 / last layer at end "
              "| FA output feedback_angle | DFA alignment start -> end | DFA layer 1 / last layer at end |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for act, depth in keys:
        fa = _angles(s, *cell(act, depth, "feedback_alignment"))
        dfa = _angles(s, *cell(act, depth, "direct_feedback_alignment"))
        dfa_text = " | ".join(dfa[:2]) if dfa else "diverged | "
        lines.append(f"| {act} | {depth} | {' | '.join(fa)} | {dfa_text} |")
    return [*lines, ""]


def _angles(s: Studies, trial, metrics, tags) -> list[str] | None:
    """Mean alignment over hidden layers at the first three and last ten logged steps;
    layer 1 and the last layer over the last ten; FA's output feedback angle at the last
    logged step."""
    if tags.get("bpstudy.outcome") == "diverged":
        return None
    layers = s.layers(trial.user_attrs["mlflow_run_id"])
    steps = sorted(layers["step"].unique())
    mean = layers.groupby("step")["alignment"].mean()
    end = layers[layers["step"].isin(steps[-10:])].groupby("layer")["alignment"].mean()
    text = [
        f"{mean.loc[steps[:3]].mean():.1f} -> {mean.loc[steps[-10:]].mean():.1f}",
        f"{end.iloc[0]:.1f} / {end.iloc[-1]:.1f}",
    ]
    if "feedback_angle" in layers and layers["feedback_angle"].notna().any():
        top = layers["layer"].max()
        final = layers[(layers["step"] == steps[-1]) & (layers["layer"] == top)]
        text.append(f"{final['feedback_angle'].iloc[0]:.1f}")
    return text


def energy_based(s: Studies) -> list[str]:
    from energy_figures import tables as energy_tables  # docs/: this script's folder

    return energy_tables(s.folder)


SECTIONS = {
    "vanishing_gradients": vanishing,
    "residual_depth": residual,
    "exploding": exploding,
    "learning_rules": learning_rules,
    "energy_based": energy_based,
}


def tables(folder: Path) -> str:
    s = Studies(folder)
    out = []
    for name, make in SECTIONS.items():
        out += [f"## {name}", "", *make(s)]
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
