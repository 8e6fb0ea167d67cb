"""Remake the pictures in README.md and docs/studies.md: `make figures`.

Runs what a user would run, through the `bpstudy` command: one `bpstudy train` for the
per-run gradient-flow heatmap, the shipped studies (`bpstudy sweep NAME --workers 2`) and
their reports (`bpstudy report NAME --where ...`), then copies the PNGs to docs/figures/
and writes the tables of docs/studies.md to WORK/tables.md (docs/study_tables.py).
The work folder starts empty, so the studies are run on the code as it is now (a kept
folder held finished studies, which are not run again: the figures stayed those of older
code); `--keep` reuses it, to redraw only. About 10 minutes on 2 cores (edge_of_chaos
alone about 4 to 5).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
FIGURES = DOCS / "figures"
BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
MARKER = ".bpstudy-figures-work"  # what makes a folder this script's to empty

# (study, --where filters, --group, report picture -> figure name)
REPORTS = [
    (
        "vanishing_gradients",
        ["model.depth=20", "optimizer.lr=0.1"],
        None,
        {"grad_flow_profile.png": "vanishing_profile_depth20.png"},
    ),
    (
        "vanishing_gradients",
        ["model.depth=40", "optimizer.lr=0.01"],
        None,
        {"grad_flow_profile.png": "vanishing_profile_depth40.png"},
    ),
    (
        "vanishing_gradients",
        ["model.activation=sigmoid", "optimizer.lr=0.1"],
        "model.depth",
        {"grad_flow_profile.png": "sigmoid_profile_by_depth.png"},
    ),
    (
        "vanishing_gradients",
        ["model.activation=relu", "optimizer.lr=0.01"],
        "model.depth",
        {"grad_flow_profile.png": "relu_profile_by_depth.png"},
    ),
    (
        "residual_depth",
        ["model.residual.enabled=false", "model.batch_norm=false"],
        "model.depth",
        {"grad_flow_profile.png": "plain_profile_by_depth.png"},
    ),
    (
        "residual_depth",
        ["model.residual.enabled=true", "model.batch_norm=true"],
        "model.depth",
        {"grad_flow_profile.png": "resbn_profile_by_depth.png"},
    ),
    (
        "exploding",
        ["optimizer.lr=0.1"],
        "trainer.clip.mode",
        {"grad_flow_profile.png": "exploding_profile_by_clip.png"},
    ),
    (
        "exploding",
        ["trainer.clip.mode=none"],
        None,
        {"val_loss_heatmap.png": "exploding_heatmap_noclip.png"},
    ),
    (
        "exploding",
        ["trainer.clip.mode=norm"],
        None,
        {"val_loss_heatmap.png": "exploding_heatmap_clipnorm.png"},
    ),
    ("edge_of_chaos", [], None, {"edge_of_chaos.png": "edge_of_chaos.png"}),
    (
        "edge_of_chaos",
        ["model.depth=40"],
        "model.init.sigma_w",
        {"grad_flow_profile.png": "edge_of_chaos_profile_depth40.png"},
    ),
]
# the studies docs/studies.md reads (learning_rules has tables, no pictures; energy_based's
# pictures are drawn by docs/energy_figures.py)
STUDIES = [*dict.fromkeys(study for study, *_ in REPORTS), "learning_rules", "energy_based"]
# one run's own heatmap (plots/grad_flow.png in its MLflow artifacts)
RUN = ["experiment=deep_sigmoid", "trainer.progress=none", "tracking.experiment=figures"]


def bpstudy(*args: str, cwd: Path) -> None:
    print("+ bpstudy " + " ".join(args), flush=True)
    subprocess.run([BPSTUDY, *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL)


def run_heatmap(work: Path) -> Path:
    from mlflow import MlflowClient

    bpstudy("train", *RUN, cwd=work)
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("figures")
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    return Path(client.download_artifacts(run.info.run_id, "plots/grad_flow.png", str(work)))


def energy(work: Path, keep: bool) -> None:
    """The energy-based rules' section alone: its sweep, runs, figures and tables."""
    import energy_figures

    if not keep:
        bpstudy("sweep", "energy_based", "--workers", "2", "--progress", "lines", cwd=work)
        energy_figures.run_strength(BPSTUDY, work)
    energy_figures.draw(work, FIGURES)
    (work / "energy_tables.md").write_text("\n".join(energy_figures.tables(work)) + "\n")
    print(f"figures in {FIGURES}; the tables in {work / 'energy_tables.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=".figures-work", help="work folder")
    parser.add_argument(
        "--keep", action="store_true", help="reuse the work folder's studies: redraw only"
    )
    parser.add_argument(
        "--only-energy", action="store_true", help="only the energy-based rules' section"
    )
    args = parser.parse_args()
    work = Path(args.work).resolve()
    marker = work / MARKER
    if not args.keep and work.exists():
        if not marker.exists():  # never a folder this script did not make (`--work .`)
            sys.exit(
                f"{work} exists and is not a figures work folder (no {MARKER}); give another --work"
            )
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.touch()
    FIGURES.mkdir(exist_ok=True)

    import energy_figures  # docs/ is this script's folder: on sys.path

    if args.only_energy:
        energy(work, args.keep)
        return
    shutil.copyfile(run_heatmap(work), FIGURES / "grad_flow_deep_sigmoid.png")
    for study in STUDIES:
        bpstudy("sweep", study, "--workers", "2", "--progress", "lines", cwd=work)
    if not args.keep:
        energy_figures.run_strength(BPSTUDY, work)
    energy_figures.draw(work, FIGURES)
    for study, where, group, pictures in REPORTS:
        out = work / "reports" / "-".join([study, *where])
        extra = [f"--where={w}" for w in where] + ([f"--group={group}"] if group else [])
        bpstudy("report", study, "--out", str(out), *extra, cwd=work)
        for src, dst in pictures.items():
            shutil.copyfile(out / src, FIGURES / dst)
    from study_tables import tables  # docs/ is this script's folder: on sys.path

    (work / "tables.md").write_text(tables(work) + "\n")
    print(f"figures in {FIGURES}; the tables of docs/studies.md in {work / 'tables.md'}")


if __name__ == "__main__":
    main()
