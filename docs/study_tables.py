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


EOC_SIGMA_W = (1.0, 1.118034, 1.224745, 1.322876, 1.414214, 1.581139, 1.732051, 2.0)
EOC_DEPTHS = (10, 20, 30, 40, 60, 80, 100)
TRAINED = 0.5  # val/accuracy: halfway from chance (0.1) to the best cell's ~0.93


def edge_of_chaos(s: Studies) -> list[str]:
    """val/accuracy per (sigma_w^2, depth); the runs' xi_c, 6 xi_c and the deepest cell
    that trained (val/accuracy >= TRAINED) per sigma_w^2."""
    cells = s.cells("edge_of_chaos")
    head = " | ".join(f"{w * w:.3g}" for w in EOC_SIGMA_W)
    lines = [f"| depth \\ sigma_w² | {head} |", "| --- |" + " --- |" * len(EOC_SIGMA_W)]
    xi, deepest = [], []
    for depth in EOC_DEPTHS:
        row = []
        for w in EOC_SIGMA_W:
            t, m, tags = _get(cells, **{"model.init.sigma_w": w, "model.depth": depth})
            row.append(_accuracy(m, tags))
        lines.append(f"| {depth} | " + " | ".join(row) + " |")
    for w in EOC_SIGMA_W:
        t, _, _ = _get(cells, **{"model.init.sigma_w": w, "model.depth": EOC_DEPTHS[0]})
        xi.append(float(s.client.get_run(t.user_attrs["mlflow_run_id"]).data.params["theory.xi_c"]))
        trained = [d for d in EOC_DEPTHS
                   if _get(cells, **{"model.init.sigma_w": w, "model.depth": d})[1].get(
                       "val/accuracy", 0.0) >= TRAINED]  # fmt: skip
        deepest.append(str(max(trained)) if trained else "none")
    lines.append("| ξ_c | " + " | ".join(f"{x:.3g}" for x in xi) + " |")
    lines.append("| 6 ξ_c | " + " | ".join(f"{6 * x:.3g}" for x in xi) + " |")
    lines.append(f"| deepest with val acc ≥ {TRAINED} | " + " | ".join(deepest) + " |")
    lines += ["", "| depth | log10 ‖dW_1‖/‖dW_L‖ | " + head + " |",
              "| --- | --- |" + " --- |" * len(EOC_SIGMA_W)]  # fmt: skip
    for depth in (20, 40):
        predicted, first, final = [], [], []
        for w in EOC_SIGMA_W:
            t, m, _ = _get(cells, **{"model.init.sigma_w": w, "model.depth": depth})
            history = s.client.get_metric_history(t.user_attrs["mlflow_run_id"],
                                                  "grad_norm/ratio_log10")  # fmt: skip
            predicted.append(f"{m['theory/ratio_log10']:+.2f}")
            first.append(f"{min(history, key=lambda h: h.step).value:+.2f}")
            final.append(f"{m['grad_norm/ratio_log10']:+.2f}")
        lines.append(f"| {depth} | predicted at init | " + " | ".join(predicted) + " |")
        lines.append(f"| {depth} | measured at step 0 | " + " | ".join(first) + " |")
        lines.append(f"| {depth} | measured at the end | " + " | ".join(final) + " |")
    return [*lines, ""]


def energy_based(s: Studies) -> list[str]:
    from energy_figures import tables as energy_tables  # docs/: this script's folder

    return energy_tables(s.folder)


SECTIONS = {
    "vanishing_gradients": vanishing,
    "residual_depth": residual,
    "exploding": exploding,
    "learning_rules": learning_rules,
    "edge_of_chaos": edge_of_chaos,
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
