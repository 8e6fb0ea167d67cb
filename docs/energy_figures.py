"""The energy-based rules' figures and tables of docs/studies.md (`make figures` calls these):

- energy_accuracy.png: val/accuracy at the last epoch against depth, each rule at its best
  learning rate of `sweeps/energy_based.yaml` (equal epochs for every rule);
- energy_settle.png: the mean Gauss-Seidel sweeps per phase against depth (same sweep);
- energy_alignment.png: the alignment angle against the feedback gain gamma (contrastive
  Hebbian learning) and the nudging beta (equilibrium propagation, symmetric and
  one-sided), from `bpstudy train -m` runs on a fresh float64 network;
- `tables(folder)`: the sweep's cells, its settle cost, and the angles behind the figure.

    python docs/energy_figures.py FOLDER     # after make figures, or the runs below by hand
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

RULES = ("backprop", "contrastive_hebbian", "equilibrium_propagation", "feedback_alignment",
         "direct_feedback_alignment")  # fmt: skip
SHORT = {"backprop": "BP", "contrastive_hebbian": "CHL", "equilibrium_propagation": "EqProp",
         "feedback_alignment": "FA", "direct_feedback_alignment": "DFA"}  # fmt: skip
DEPTHS = (1, 2, 3)
LRS = (0.03, 0.1, 0.3)  # sweeps/energy_based.yaml's optimizer.lr
GAMMAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
BETAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
EXPERIMENT = "energy_strength"
# a fresh network, a few logged steps: the angle of the rule's own estimate, not of training
STRENGTH_RUN = ["model.depth=2", "model.width=64", "trainer.epochs=1", "trainer.log_every=4",
                "trainer.dtype=float64", "trainer.progress=none",
                f"tracking.experiment={EXPERIMENT}"]  # fmt: skip


def strength_commands() -> list[list[str]]:
    """The `bpstudy train -m` sweeps over gamma and beta behind energy_alignment.png."""
    gammas, betas = ",".join(map(str, GAMMAS)), ",".join(map(str, BETAS))
    return [
        ["train", "-m", "learning_rule=contrastive_hebbian",
         f"learning_rule.feedback_gain={gammas}", *STRENGTH_RUN],
        ["train", "-m", "learning_rule=equilibrium_propagation", f"learning_rule.beta={betas}",
         "learning_rule.symmetric_nudging=true,false", *STRENGTH_RUN],
    ]  # fmt: skip


def run_strength(bpstudy: str, work: Path) -> None:
    for args in strength_commands():
        print("+ bpstudy " + " ".join(args), flush=True)
        subprocess.run([bpstudy, *args], cwd=work, check=True, stdin=subprocess.DEVNULL)


def _layers(client: MlflowClient, run_id: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(client.download_artifacts(run_id, "diagnostics/layers.parquet", tmp))


def strength_angles(folder: Path) -> pd.DataFrame:
    """One row per run of EXPERIMENT: series, strength, median alignment over steps and
    layers, and over the first hidden layer alone."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    rows = []
    for run in client.search_runs([experiment.experiment_id]):
        p = run.data.params
        if p["learning_rule.name"] == "contrastive_hebbian":
            series, strength = "CHL (gamma)", float(p["learning_rule.feedback_gain"])
        else:
            sym = p["learning_rule.symmetric_nudging"] == "True"
            series = f"EqProp {'symmetric' if sym else 'one-sided'} (beta)"
            strength = float(p["learning_rule.beta"])
        layers = _layers(client, run.info.run_id)
        first = layers[layers["layer"] == 1]["alignment"]
        rows.append((series, strength, layers["alignment"].median(), first.median()))
    frame = pd.DataFrame(rows, columns=["series", "strength", "angle", "angle_L01"])
    return frame.sort_values(["series", "strength"]).reset_index(drop=True)


def sweep_cells(folder: Path) -> pd.DataFrame:
    """The energy_based study's finished runs: rule, depth, lr, val/accuracy (NaN when
    diverged), settle/mean_iterations, median alignment."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bpstudy")
    rows = []
    for run in client.search_runs(
        [experiment.experiment_id], filter_string="tags.`optuna.study` = 'energy_based'"
    ):
        p, m, tags = run.data.params, run.data.metrics, run.data.tags
        if "learning_rule.name" not in p:  # the study's parent run
            continue
        angles = [v for k, v in m.items() if k.startswith("alignment/")]
        diverged = tags.get("bpstudy.outcome") == "diverged"
        rows.append(
            (
                p["learning_rule.name"],
                int(p["model.depth"]),
                float(p["optimizer.lr"]),
                np.nan if diverged else m.get("val/accuracy", np.nan),
                m.get("settle/mean_iterations", np.nan),
                m.get("settle/unsettled", np.nan),
                float(np.median(angles)) if angles else np.nan,
            )
        )
    columns = ["rule", "depth", "lr", "val_accuracy", "sweeps", "unsettled", "alignment"]
    return pd.DataFrame(rows, columns=columns)


def best_by_depth(cells: pd.DataFrame) -> pd.DataFrame:
    """Each rule and depth at its best learning rate (by val/accuracy)."""
    ok = cells.dropna(subset=["val_accuracy"])
    idx = ok.groupby(["rule", "depth"])["val_accuracy"].idxmax()
    return ok.loc[idx].set_index(["rule", "depth"])


def draw(folder: Path, figures: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, ax, name: str) -> None:
        ax.legend()
        fig.tight_layout()
        fig.savefig(figures / name, dpi=110)
        plt.close(fig)

    cells = sweep_cells(folder)  # the store is read once for both pictures of the sweep
    best = best_by_depth(cells)
    fig, ax = plt.subplots(figsize=(6, 4))
    for rule in RULES:
        if rule in best.index.get_level_values(0):
            b = best.loc[rule]
            ax.plot(b.index, b["val_accuracy"], marker="o", label=SHORT[rule])
    ax.set(xlabel="hidden layers (width 64, sigmoid, MSE)", ylabel="val/accuracy, epoch 20",
           xticks=DEPTHS, title="energy_based: each rule at its best lr")  # fmt: skip
    save(fig, ax, "energy_accuracy.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for rule in ("contrastive_hebbian", "equilibrium_propagation"):
        mean = cells[cells["rule"] == rule].groupby("depth")["sweeps"].mean()
        ax.plot(mean.index, mean.to_numpy(), marker="o", label=SHORT[rule])
    ax.set(xlabel="hidden layers (width 64, sigmoid)", ylabel="sweeps per phase (mean over run)",
           xticks=DEPTHS, ylim=(0, None), title="energy_based: settle cost (settle_tol 1e-4)")  # fmt: skip
    save(fig, ax, "energy_settle.png")

    angles = strength_angles(folder)
    fig, ax = plt.subplots(figsize=(6, 4))
    for series, group in angles.groupby("series"):
        ax.loglog(group["strength"], group["angle"], marker="o", label=series)
    ax.set(xlabel="feedback gain gamma / nudging beta", ylabel="median alignment (degrees)",
           title="angle to the exact gradient, fresh 2 x 64 sigmoid net")  # fmt: skip
    save(fig, ax, "energy_alignment.png")


def tables(folder: Path) -> list[str]:
    cells = sweep_cells(folder)
    lines = ["| rule | depth | " + " | ".join(f"lr {lr}" for lr in LRS) + " | sweeps per phase | alignment |",
             "| --- | --- |" + " --- |" * (len(LRS) + 2)]  # fmt: skip
    for rule in RULES:
        for depth in DEPTHS:
            here = cells[(cells["rule"] == rule) & (cells["depth"] == depth)].set_index("lr")
            accs = [
                "diverged" if np.isnan(here.loc[lr, "val_accuracy"]) else
                f"{here.loc[lr, 'val_accuracy']:.3f}" if lr in here.index else "-"
                for lr in LRS
            ]  # fmt: skip
            sweeps = here["sweeps"].mean()
            extra = "-" if np.isnan(sweeps) else f"{sweeps:.1f}"
            angle = "0 (itself)" if rule == "backprop" else f"{here['alignment'].median():.1f}"
            lines.append(f"| {SHORT[rule]} | {depth} | {' | '.join(accs)} | {extra} | {angle} |")
    lines += ["", "| series | gamma or beta | median alignment (degrees) | layer 1 |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for row in strength_angles(folder).itertuples(index=False):
        lines.append(f"| {row.series} | {row.strength} | {row.angle:.2f} | {row.angle_L01:.2f} |")
    return [*lines, ""]


if __name__ == "__main__":
    print("\n".join(tables(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())))
