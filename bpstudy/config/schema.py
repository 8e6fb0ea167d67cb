"""The typed config: one frozen dataclass per config group, mirroring `conf/`.

Hydra composes plain YAML; `validate` (in `bpstudy.config.validate`) turns the composed
tree into these objects once, at the edge, checking keys, types, enum values and ranges.
Everything below the edge takes these typed values, never a DictConfig.

Field metadata carries range checks: `ge`, `gt`, `le`, `lt` (numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bpstudy.errors import ConfigError
from bpstudy.vocabulary import ACTIVATIONS, INIT_SCHEMES

# the config groups of conf/ (one folder of options each): compose.GROUPS, read by
# validation and by the sweep files' checks
GROUPS = ("data", "model", "optimizer", "learning_rule", "trainer", "tracking", "experiment")

Task = Literal["auto", "classification", "regression"]
Activation = Literal[ACTIVATIONS]  # the activations bpstudy.model.activations implements
InitScheme = Literal[INIT_SCHEMES]  # the schemes bpstudy.model.init implements


def _fraction(default: float) -> float:
    return field(default=default, metadata={"gt": 0.0, "lt": 1.0})


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's bundled 8x8 handwritten digits (1797 x 64, 10 classes)."""

    name: Literal["digits"] = "digits"
    val_fraction: float = _fraction(0.15)
    test_fraction: float = _fraction(0.15)


@dataclass(frozen=True)
class SpiralsData:
    """Interleaved 2-D spirals, one arm per class: a small nonlinear classification task."""

    name: Literal["spirals"] = "spirals"
    n_per_class: int = field(default=300, metadata={"ge": 2})
    n_classes: int = field(default=3, metadata={"ge": 2})
    noise: float = field(default=0.2, metadata={"ge": 0.0})
    turns: float = field(default=1.5, metadata={"gt": 0.0})
    val_fraction: float = _fraction(0.15)
    test_fraction: float = _fraction(0.15)


@dataclass(frozen=True)
class TeacherData:
    """Regression onto a fixed random deep 'teacher' MLP with Gaussian inputs."""

    name: Literal["teacher"] = "teacher"
    n_samples: int = field(default=2000, metadata={"ge": 10})
    in_dim: int = field(default=16, metadata={"ge": 1})
    out_dim: int = field(default=1, metadata={"ge": 1})
    depth: int = field(default=3, metadata={"ge": 0})
    width: int = field(default=32, metadata={"ge": 1})
    activation: Activation = "tanh"
    noise: float = field(default=0.05, metadata={"ge": 0.0})
    val_fraction: float = _fraction(0.15)
    test_fraction: float = _fraction(0.15)


@dataclass(frozen=True)
class CsvData:
    """A CSV file of the user's: feature columns plus one target column."""

    name: Literal["csv"] = "csv"
    path: str = ""
    target: str | None = None  # column name, or integer index as text; None = last column
    task: Task = "auto"
    delimiter: str = ","
    header: bool = True
    val_fraction: float = _fraction(0.15)
    test_fraction: float = _fraction(0.15)


@dataclass(frozen=True)
class NpzData:
    """A NumPy .npz archive of the user's holding a feature array and a target array."""

    name: Literal["npz"] = "npz"
    path: str = ""
    x_key: str = "X"
    y_key: str = "y"
    task: Task = "auto"
    val_fraction: float = _fraction(0.15)
    test_fraction: float = _fraction(0.15)


@dataclass(frozen=True)
class MnistData:
    """MNIST from the four standard IDX files (optionally gzipped) in a folder."""

    name: Literal["mnist"] = "mnist"
    path: str = ""
    limit: int | None = field(default=None, metadata={"ge": 1})  # max training examples
    val_fraction: float = _fraction(0.1)


DataConfig = DigitsData | SpiralsData | TeacherData | CsvData | NpzData | MnistData
DATA_CONFIGS: dict[str, type] = {
    "digits": DigitsData,
    "spirals": SpiralsData,
    "teacher": TeacherData,
    "csv": CsvData,
    "npz": NpzData,
    "mnist": MnistData,
}

# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class InitConfig:
    scheme: InitScheme = "he_normal"
    sigma_w: float = field(
        default=1.0, metadata={"ge": 0.0}
    )  # scheme=normal: W ~ N(0, sigma_w^2/fan_in)
    sigma_b: float = field(default=0.0, metadata={"ge": 0.0})  # scheme=normal: b ~ N(0, sigma_b^2)
    gain: float = field(default=1.0, metadata={"gt": 0.0})  # scheme=orthogonal


@dataclass(frozen=True)
class ResidualConfig:
    enabled: bool = False


@dataclass(frozen=True)
class ModelConfig:
    depth: int = field(default=5, metadata={"ge": 1})
    width: int = field(default=64, metadata={"ge": 1})
    activation: Activation = "relu"
    leaky_slope: float = field(default=0.01, metadata={"ge": 0.0, "lt": 1.0})
    init: InitConfig = field(default_factory=InitConfig)
    batch_norm: bool = False
    bn_momentum: float = field(default=0.1, metadata={"gt": 0.0, "le": 1.0})
    bn_eps: float = field(default=1e-5, metadata={"gt": 0.0})
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "lt": 1.0})
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"


# ---------------------------------------------------------------- optimizer


@dataclass(frozen=True)
class SGDConfig:
    name: Literal["sgd"] = "sgd"
    lr: float = field(default=0.1, metadata={"gt": 0.0})


@dataclass(frozen=True)
class MomentumConfig:
    name: Literal["momentum"] = "momentum"
    lr: float = field(default=0.05, metadata={"gt": 0.0})
    momentum: float = field(default=0.9, metadata={"ge": 0.0, "lt": 1.0})
    nesterov: bool = False


@dataclass(frozen=True)
class AdagradConfig:
    name: Literal["adagrad"] = "adagrad"
    lr: float = field(default=0.01, metadata={"gt": 0.0})
    eps: float = field(default=1e-10, metadata={"gt": 0.0})


@dataclass(frozen=True)
class RMSpropConfig:
    name: Literal["rmsprop"] = "rmsprop"
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    rho: float = field(default=0.99, metadata={"ge": 0.0, "lt": 1.0})
    eps: float = field(default=1e-8, metadata={"gt": 0.0})


@dataclass(frozen=True)
class AdamConfig:
    name: Literal["adam"] = "adam"
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    beta1: float = field(default=0.9, metadata={"ge": 0.0, "lt": 1.0})
    beta2: float = field(default=0.999, metadata={"ge": 0.0, "lt": 1.0})
    eps: float = field(default=1e-8, metadata={"gt": 0.0})


@dataclass(frozen=True)
class AdamWConfig(AdamConfig):
    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = field(default=0.01, metadata={"ge": 0.0})


OptimizerConfig = (
    SGDConfig | MomentumConfig | AdagradConfig | RMSpropConfig | AdamConfig | AdamWConfig
)
OPTIMIZER_CONFIGS: dict[str, type] = {
    "sgd": SGDConfig,
    "momentum": MomentumConfig,
    "adagrad": AdagradConfig,
    "rmsprop": RMSpropConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
}

# ---------------------------------------------------------------- learning rule


@dataclass(frozen=True)
class BackpropConfig:
    name: Literal["backprop"] = "backprop"


@dataclass(frozen=True)
class FeedbackAlignmentConfig:
    """Lillicrap et al. (2016): fixed random B of W's shape, N(0, scale^2 / fan_in), in
    place of W^T in the backward pass."""

    name: Literal["feedback_alignment"] = "feedback_alignment"
    scale: float = field(default=1.0, metadata={"gt": 0.0})


@dataclass(frozen=True)
class DirectFeedbackAlignmentConfig:
    """Nøkland (2016): the output error straight to every hidden layer through fixed random
    B_i: (out_dim, width), N(0, scale^2 / width)."""

    name: Literal["direct_feedback_alignment"] = "direct_feedback_alignment"
    scale: float = field(default=1.0, metadata={"gt": 0.0})


@dataclass(frozen=True)
class ContrastiveHebbianConfig:
    """Xie & Seung (2003): feedback gamma W^T, free and clamped phases, the layer-wise
    update gamma^(k - L) (clamped - free correlation); backprop's gradient as gamma -> 0."""

    name: Literal["contrastive_hebbian"] = "contrastive_hebbian"
    feedback_gain: float = field(default=0.1, metadata={"gt": 0.0})  # gamma
    settle_steps: int = field(default=100, metadata={"ge": 1})  # most sweeps per phase
    settle_tol: float = field(default=1e-4, metadata={"ge": 0.0})  # settled: residual at most


@dataclass(frozen=True)
class EquilibriumPropagationConfig:
    """Scellier & Bengio (2017): free and nudged phases of a Hopfield-style energy with
    cost beta C; symmetric nudging +-beta (Laborieux et al. 2021)."""

    name: Literal["equilibrium_propagation"] = "equilibrium_propagation"
    beta: float = field(default=0.05, metadata={"gt": 0.0})
    symmetric_nudging: bool = True
    settle_steps: int = field(default=100, metadata={"ge": 1})
    settle_tol: float = field(default=1e-4, metadata={"ge": 0.0})


LearningRuleConfig = BackpropConfig | FeedbackAlignmentConfig | DirectFeedbackAlignmentConfig
LearningRuleConfig |= ContrastiveHebbianConfig | EquilibriumPropagationConfig
LEARNING_RULE_CONFIGS: dict[str, type] = {
    "backprop": BackpropConfig,
    "feedback_alignment": FeedbackAlignmentConfig,
    "direct_feedback_alignment": DirectFeedbackAlignmentConfig,
    "contrastive_hebbian": ContrastiveHebbianConfig,
    "equilibrium_propagation": EquilibriumPropagationConfig,
}
# rules that settle a layered energy-based network: trained on mean squared error
ENERGY_RULES = ("contrastive_hebbian", "equilibrium_propagation")

# ---------------------------------------------------------------- regularization


@dataclass(frozen=True)
class RegularizationConfig:
    """Penalties added to the loss (weights only), so they show in the gradients."""

    l1: float = field(default=0.0, metadata={"ge": 0.0})  # + l1 * sum|W|
    l2: float = field(default=0.0, metadata={"ge": 0.0})  # + l2/2 * sum W^2


# ---------------------------------------------------------------- trainer


@dataclass(frozen=True)
class ClipConfig:
    mode: Literal["none", "norm", "value"] = "none"
    threshold: float = field(default=1.0, metadata={"gt": 0.0})


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning rate over optimizer steps; `warmup_steps` ramps linearly from 0 first."""

    name: Literal["constant", "step", "cosine", "warmup"] = "constant"
    warmup_steps: int = field(default=0, metadata={"ge": 0})
    step_size: int = field(default=1000, metadata={"ge": 1})  # name=step: steps between decays
    gamma: float = field(default=0.5, metadata={"gt": 0.0, "le": 1.0})  # name=step: decay factor
    min_lr: float = field(default=0.0, metadata={"ge": 0.0})  # name=cosine: final lr


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = field(default=0, metadata={"ge": 0})  # epochs without improvement; 0 = off
    min_delta: float = field(default=0.0, metadata={"ge": 0.0})


@dataclass(frozen=True)
class TrainerConfig:
    epochs: int = field(default=10, metadata={"ge": 1})
    batch_size: int = field(default=64, metadata={"ge": 1})
    seed: int = field(default=0, metadata={"ge": 0})
    dtype: Literal["float32", "float64"] = "float32"
    log_every: int = field(default=10, metadata={"ge": 1})
    clip: ClipConfig = field(default_factory=ClipConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    progress: Literal["auto", "bar", "lines", "none"] = "auto"


# ---------------------------------------------------------------- tracking


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db
    experiment: str = "bpstudy"
    max_points_per_metric: int = field(default=25, metadata={"ge": 2})


@dataclass(frozen=True)
class OutcomeConfig:
    """Thresholds that name a run's outcome (bpstudy.training.outcome) and its training
    verdict (bpstudy.training.verdict)."""

    vanishing_log10: float = -3.0  # median log10(|dW_1| / |dW_L|) below this: vanishing
    exploding_log10: float = 3.0  # ... above this: exploding
    vanishing_norm: float = field(default=1e-8, metadata={"ge": 0.0})
    exploding_norm: float = field(default=1e4, metadata={"gt": 0.0})
    # the training verdict (bpstudy.training.verdict): learned, or its symptoms
    stalled_loss_ratio: float = field(default=0.9, metadata={"gt": 0.0})
    stalled_accuracy_margin: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    unstable_spike_ratio: float = field(default=3.0, metadata={"gt": 1.0})
    unstable_rise: float = field(default=0.1, metadata={"ge": 0.0})
    unstable_rise_share: float = field(default=0.3, metadata={"gt": 0.0, "le": 1.0})
    unstable_floor: float = field(default=0.05, metadata={"ge": 0.0})
    overfit_val_rise: float = field(default=0.2, metadata={"ge": 0.0})
    overfit_accuracy_gap: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    dead_share: float = field(default=0.5, metadata={"gt": 0.0, "le": 1.0})
    saturated_share: float = field(default=0.5, metadata={"gt": 0.0, "le": 1.0})


# ---------------------------------------------------------------- the whole


@dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    learning_rule: LearningRuleConfig
    regularization: RegularizationConfig
    trainer: TrainerConfig
    tracking: TrackingConfig
    outcome: OutcomeConfig = field(default_factory=OutcomeConfig)


# the groups whose option is one of several dataclasses, chosen by the node's `name`
CHOSEN_BY_NAME: dict[str, dict[str, type]] = {
    "data": DATA_CONFIGS,
    "optimizer": OPTIMIZER_CONFIGS,
    "learning_rule": LEARNING_RULE_CONFIGS,
}


def resolve_loss(loss: str, task: str, data_name: str, rule: str = "backprop") -> str:
    """The loss for a data set of `task` and learning `rule`: `auto` picks it (mse for an
    energy-based rule, which clamps or nudges the output toward the target); cross_entropy
    needs classification (checked here for every data set: from the config where it says
    the task, else once the data is loaded) and a rule other than those."""
    if loss == "auto":
        return "cross_entropy" if task == "classification" and rule not in ENERGY_RULES else "mse"
    if loss == "cross_entropy" and task != "classification":
        raise ConfigError(
            f"model.loss=cross_entropy needs a classification data set; data={data_name} is "
            "regression (use model.loss=mse or auto)"
        )
    return loss
