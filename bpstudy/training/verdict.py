"""Name how training went: `learned`, or the symptoms its curves and units show.

The outcome (outcome.py) answers "did the gradient reach the first layer?"; this answers
"did the network learn?". A run may show several symptoms; its verdict is the first of
them in this order, or `learned` when it shows none. Thresholds come from the `outcome`
config node; `initial` is the loss of the first logged batch (before any update has
shown), `chance` is 1 / classes. The unstable rule measures the first epoch, and what
counts as noise, against a `scale`: the initial loss, but never more than guessing's loss
ln(classes) under cross-entropy. A network whose initialisation already loses far more
than guessing (a deep net that explodes at the start) would otherwise hide a first-epoch
spike under that first loss: the deep_residual_bn preset starts at 49, spikes to 139
after its first epoch (guessing: 2.3), and its ratio to the initial loss (2.8) sat just
under the bound, on one side or the other by numpy's release. Later epochs are measured
against the lowest epoch before them; a logged batch against the initial loss.

| symptom    | rule                                                                           |
|------------|--------------------------------------------------------------------------------|
| stalled    | last epoch's train/loss >= `stalled_loss_ratio` x initial, or (classification) |
|            | val/accuracy <= chance + `stalled_accuracy_margin` x (1 - chance)              |
| unstable   | the run diverged; or a logged batch loss after the first >                     |
|            | `unstable_spike_ratio` x initial; or the first epoch's train/loss above        |
|            | initial and > that ratio x scale; or a later epoch's > that ratio x the lowest |
|            | of the epochs before it; or (>= 4 epochs) train/loss rose by more than         |
|            | `unstable_rise` (relative) in >= `unstable_rise_share` of the epochs after the |
|            | first. An epoch's change below `unstable_floor` x scale is noise, not a rise.  |
|            | scale: initial, but at most ln(classes) under cross-entropy (guessing's loss)  |
| overfit    | val/loss in each of the last 3 epochs (all after its lowest) > (1 +            |
|            | `overfit_val_rise`) x its lowest, with train/loss lower at the end than at     |
|            | that epoch; or (classification) train/accuracy - val/accuracy >                |
|            | `overfit_accuracy_gap` in each of the last 3 epochs                            |
| dead_units | some hidden layer's median `dead` over logged steps >= `dead_share`            |
|            | (activations with a zero slope: relu)                                          |
| saturated  | some hidden layer's median `saturation` over logged steps >= `saturated_share` |
|            | (bounded activations: sigmoid, tanh, softsign)                                 |

A run that diverged is only `unstable`: its curves after the divergence say nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bpstudy.config.schema import Config, OutcomeConfig
from bpstudy.training.state import TrainResult

SYMPTOMS = ("stalled", "unstable", "overfit", "dead_units", "saturated")
VERDICTS = ("learned", *SYMPTOMS)

# overfitting counts when it holds for this many epochs at the end (one noisy epoch of a
# slow run is not overfitting)
OVERFIT_TAIL = 3

# which per-unit statistic can name a symptom, by activation: a relu unit that does not
# fire is dead; a bounded activation's flat tails are saturation
DEAD_KIND = ("relu",)
SATURATING_KIND = ("sigmoid", "tanh", "softsign")


@dataclass(frozen=True)
class Verdict:
    training: str  # learned or the first symptom
    symptoms: tuple[str, ...]

    @property
    def symptoms_tag(self) -> str:
        """The comma list a tag holds ('' for none)."""
        return ",".join(self.symptoms)


def verdict_of(result: TrainResult, cfg: Config) -> Verdict:
    """The training verdict of the run `cfg` made, by the thresholds of `cfg.outcome`."""
    return judge(result, cfg.model.activation, cfg.outcome)


def judge(result: TrainResult, activation: str, t: OutcomeConfig | None = None) -> Verdict:
    """The training verdict of a run that ended (finished, early-stopped, diverged)."""
    t = t or OutcomeConfig()
    if result.diverged:
        return Verdict("unstable", ("unstable",))
    found = [
        name
        for name, rule in (
            ("stalled", stalled),
            ("unstable", unstable),
            ("overfit", overfit),
            ("dead_units", dead_units),
            ("saturated", saturated),
        )
        if rule(result, activation, t)
    ]
    return Verdict(found[0] if found else "learned", tuple(found))


def batch_losses(result: TrainResult) -> np.ndarray:
    """The loss of each logged step's batch."""
    losses = result.step_stats.get("batch_loss")
    return np.empty(0) if losses is None else losses.to_numpy(dtype=float)


def initial_loss(result: TrainResult) -> float:
    """The first logged batch's loss (nan without one)."""
    losses = batch_losses(result)
    return float(losses[0]) if losses.size else math.nan


def chance(result: TrainResult) -> float | None:
    """Accuracy by guessing, 1 / classes (None for regression)."""
    if "val/accuracy" not in result.metrics or result.network is None:
        return None
    return 1.0 / result.network.output.W.shape[1]


def _epoch_losses(result: TrainResult, split: str) -> np.ndarray:
    column = f"{split}/loss"
    h = result.history
    return h[column].to_numpy(dtype=float) if column in h else np.empty(0)


def stalled(result: TrainResult, activation: str, t: OutcomeConfig) -> bool:
    train = _epoch_losses(result, "train")
    start = initial_loss(result)
    if train.size and math.isfinite(start) and train[-1] >= t.stalled_loss_ratio * start:
        return True
    guess = chance(result)
    if guess is None:
        return False
    return result.metrics["val/accuracy"] <= guess + t.stalled_accuracy_margin * (1 - guess)


def loss_scale(result: TrainResult) -> float:
    """What the unstable rule measures losses against: the initial loss, at most
    guessing's ln(classes) under cross-entropy (module docstring)."""
    start, net = initial_loss(result), result.network
    if net is not None and net.arch.loss == "cross_entropy":
        return min(start, math.log(net.output.W.shape[1]))
    return start


def unstable(result: TrainResult, activation: str, t: OutcomeConfig) -> bool:
    start, scale = initial_loss(result), loss_scale(result)
    if not math.isfinite(start):
        return False
    batch, train = batch_losses(result), _epoch_losses(result, "train")
    if batch.size > 1 and batch[1:].max() > t.unstable_spike_ratio * start:
        return True
    if train.size < 1:
        return False
    noise = t.unstable_floor * scale
    # the first epoch: above where it started, and far above guessing
    if train[0] > start and train[0] > t.unstable_spike_ratio * scale:
        return True
    lowest_before = np.minimum.accumulate(train)[:-1]
    jumps = (train[1:] > t.unstable_spike_ratio * lowest_before) & (
        train[1:] - lowest_before > noise
    )
    if jumps.any():
        return True
    rises = (train[1:] > train[:-1] * (1 + t.unstable_rise)) & (train[1:] - train[:-1] > noise)
    return train.size >= 4 and float(rises.mean()) >= t.unstable_rise_share


def overfit(result: TrainResult, activation: str, t: OutcomeConfig) -> bool:
    """Sustained for the last OVERFIT_TAIL epochs: one noisy epoch is not overfitting."""
    h = result.history
    if len(h) < OVERFIT_TAIL:
        return False
    tail = h.iloc[-OVERFIT_TAIL:]
    if "val/accuracy" in h and "train/accuracy" in h:
        gap = tail["train/accuracy"] - tail["val/accuracy"]
        if bool((gap > t.overfit_accuracy_gap).all()):
            return True
    train, val = _epoch_losses(result, "train"), _epoch_losses(result, "val")
    best = int(np.argmin(val)) if val.size else 0
    if train.size != val.size or val.size - best <= OVERFIT_TAIL:
        return False
    risen = val[-OVERFIT_TAIL:] > (1 + t.overfit_val_rise) * val[best]
    return bool(risen.all() and train[-1] < train[best])


def _worst_median(result: TrainResult, column: str) -> float:
    """The largest, over hidden layers, median of `column` over logged steps."""
    stats = result.layer_stats
    if stats.empty or column not in stats:
        return 0.0
    return float(stats.groupby("layer")[column].median().max())


def dead_units(result: TrainResult, activation: str, t: OutcomeConfig) -> bool:
    return activation in DEAD_KIND and _worst_median(result, "dead") >= t.dead_share


def saturated(result: TrainResult, activation: str, t: OutcomeConfig) -> bool:
    return (
        activation in SATURATING_KIND and _worst_median(result, "saturation") >= t.saturated_share
    )
