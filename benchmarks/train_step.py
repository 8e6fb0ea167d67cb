"""Milliseconds per optimizer step of bpstudy's NumPy trainer on the reference networks,
the GFLOP/s it achieves (6 * weights * batch per step), this machine's float32 matmul
GFLOP/s for the same shapes, the cost of diagnostics (log_every=1 vs off), and, when torch
is importable, the ratio against an equivalent torch.nn.Sequential + SGD step measured in
the same run. Run with 1 and 2 BLAS threads.

    python benchmarks/train_step.py [--threads 1 2] [--quick]
    python benchmarks/train_step.py --diagnostics [--repeats 15]
    python benchmarks/train_step.py --theory
    python benchmarks/train_step.py --energy [--threads 1]

`--theory` times `bpstudy.theory.predict(cfg)` on typed configs (issue 24's target:
< 20 ms per call), one line per activation and phase, fastest of `--repeats` rounds.

`--energy` times a training step of contrastive_hebbian and equilibrium_propagation
against backprop on the same net and batch (digits, sigmoid, mean squared error, depth 1
and 3, widths 64 and 256, batch 64), counts their settle sweeps per step (all phases), and
checks issue 26's target: an energy-based step costs at most sweeps x one forward pass x 1.3,
beside the ratio that the step's matrix products alone give (energy_timing).

`--diagnostics` times only the step with and without diagnostics (log_every=1 vs off),
in `--repeats` interleaved rounds, and prints two ratios: of the fastest rounds, and the
median of each round's own ratio (diagnostics over the plain step just before it, which
a slow spell of the machine hits alike), with the lowest and highest of those pairs.
With `--cpu --threads 1` the clock is the process's CPU time, which leaves out the time
other processes of a shared machine take (not their effect on the caches).

Targets (issue 2): ratio vs torch <= 1.0 at 1 thread and <= 1.15 at 2 threads; for widths
>= 256, achieved GFLOP/s >= 60% of the matmul rate; diagnostics ratio <= 1.10.

This machine is a shared VM: the same step measured twice in a row can differ by 30%.
So the four variants of a network (ours, ours with diagnostics, torch, the bare matmuls)
are timed in interleaved rounds, and each figure is the fastest round, the usual
estimate of what the code itself costs (as `timeit` advises): a slow round measures
the neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bpstudy.data import Dataset
from bpstudy.learning_rule import Backprop
from bpstudy.model import Architecture, Network
from bpstudy.optimizer import SGD, Schedule
from bpstudy.training.loop import LoopSettings, Trainer

try:
    import torch
except ImportError:  # torch is never a dependency: the comparison is optional
    torch = None

NETS = [(5, 64, 64), (10, 256, 128), (20, 256, 128), (50, 128, 64), (4, 1024, 256)]
IN_DIM, CLASSES = 64, 10


def n_weights(depth: int, width: int) -> int:
    return IN_DIM * width + (depth - 1) * width * width + width * CLASSES


def rounds(
    fns: dict, min_time: float, repeats: int, clock=time.perf_counter
) -> dict[str, list[float]]:
    """Seconds per call of each function in each of `repeats` interleaved rounds, each
    round at least `min_time` long per function, by `clock`."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n, start = 0, clock()
            while True:
                fn()
                n += 1
                elapsed = clock() - start
                if elapsed >= min_time:
                    break
            times[name].append(elapsed / n)
    return times


def best_of(fns: dict, min_time: float, repeats: int) -> dict:
    """Seconds per call of each function: the fastest of `repeats` interleaved rounds."""
    return {name: min(t) for name, t in rounds(fns, min_time, repeats).items()}


def ours(depth, width, batch, activation, log_every):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, IN_DIM)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch)
    arch = Architecture(IN_DIM, CLASSES, depth, width, activation)
    scheme = "he_normal" if activation == "relu" else "xavier_normal"
    net = Network(arch, np.float32, np.random.default_rng(1), init_scheme=scheme)
    data = Dataset(X, y, X, y, X, y, "classification", CLASSES)
    settings = LoopSettings(epochs=1, batch_size=batch, log_every=log_every)
    trainer = Trainer(
        net,
        Backprop(),
        SGD(net.theta, net.grad, net.n_weights),
        Schedule("constant", 1e-3, 1),
        data,
        settings,
        np.random.default_rng(2),
    )
    trainer.step = 1  # step 0 is always a logging step; start after it

    def step():
        trainer.train_step(X, y)
        if log_every > 1_000_000:
            trainer.step = 1

    return step


def matmuls(depth, width, batch):
    """The three matmuls per layer a step needs (x W, x^T dz, dz W^T), nothing else."""
    rng = np.random.default_rng(0)
    dims = [IN_DIM] + [width] * depth + [CLASSES]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in itertools.pairwise(dims)]
    xs = [rng.standard_normal((batch, a)).astype(np.float32) for a in dims[:-1]]
    zs = [rng.standard_normal((batch, b)).astype(np.float32) for b in dims[1:]]

    def step():
        for x, W, z in zip(xs, Ws, zs, strict=True):
            x @ W
            x.T @ z
            z @ W.T

    return step


def torch_step(depth, width, batch, activation):
    torch.manual_seed(0)
    act = torch.nn.Tanh if activation == "tanh" else torch.nn.ReLU
    layers, d = [], IN_DIM
    for _ in range(depth):
        layers += [torch.nn.Linear(d, width), act()]
        d = width
    model = torch.nn.Sequential(*layers, torch.nn.Linear(d, CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.randn(batch, IN_DIM)
    y = torch.randint(0, CLASSES, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()

    return step


def diagnostics_cost(threads_list: list[int], min_time: float, repeats: int, clock) -> None:
    """Per net and activation: ms/step off and on, the best-of ratio, and the median,
    lowest and highest of the paired per-round ratios."""
    print(
        f"{'threads':>7} {'net (DxWxB)':>13} {'act':>5} {'off ms':>8} {'on ms':>8} {'best':>6} {'paired':>6} {'min':>6} {'max':>6}"
    )
    for threads in threads_list:
        with threadpool_limits(limits=threads):
            for depth, width, batch in NETS:
                for activation in ("tanh", "relu"):
                    fns = {
                        "off": ours(depth, width, batch, activation, 10**9),
                        "on": ours(depth, width, batch, activation, 1),
                    }
                    t = rounds(fns, min_time, repeats, clock)
                    pairs = [on / off for on, off in zip(t["on"], t["off"], strict=True)]
                    off, on = min(t["off"]), min(t["on"])
                    print(
                        f"{threads:>7} {f'{depth}x{width}x{batch}':>13} {activation:>5} {off * 1e3:>8.3f} {on * 1e3:>8.3f}"
                        f" {on / off:>6.3f} {statistics.median(pairs):>6.3f} {min(pairs):>6.3f} {max(pairs):>6.3f}",
                        flush=True,
                    )


def theory_timing(repeats: int) -> None:
    """Milliseconds per bpstudy.theory.predict on a validated config (the validation of a
    composed DictConfig, ~0.3 s of Hydra, is not counted: predict does it once)."""
    import bpstudy
    from bpstudy.config.validate import validate
    from bpstudy.theory import predict

    cases = [
        ("tanh", "normal", 0.8), ("tanh", "normal", 1.0), ("tanh", "normal", 2.5),
        ("sigmoid", "xavier_normal", 1.0), ("softsign", "normal", 2.0),
        ("relu", "he_normal", 1.0), ("leaky_relu", "normal", 1.2),
    ]  # fmt: skip
    print(f"{'activation':>10} {'scheme':>13} {'sigma_w':>7} {'phase':>8} {'ms/predict':>10}")
    for activation, scheme, sigma_w in cases:
        overrides = [f"model.activation={activation}", f"model.init.scheme={scheme}",
                     f"model.init.sigma_w={sigma_w}", "model.init.sigma_b=0.2236",
                     "model.depth=30", "model.width=512"]  # fmt: skip
        cfg = validate(bpstudy.compose(overrides))
        predict(cfg)  # the quadrature nodes are made once per process
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            p = predict(cfg)
            times.append(time.perf_counter() - start)
        print(f"{activation:>10} {scheme:>13} {sigma_w:>7} {p.phase:>8} {min(times) * 1e3:>10.2f}")


def energy_step(rule_name: str, depth: int, width: int, batch: int):
    """(train step, one forward pass, rule, net, sweeps) of `rule_name` on digits,
    sigmoid, float32, mean squared error: the same net and batch for every rule. `sweeps`
    adds up, over the calls of the step, the free phase's sweeps and the other phases'."""
    import bpstudy
    from bpstudy.config.validate import validate
    from bpstudy.training.run import load_data, make_trainer

    overrides = [f"learning_rule={rule_name}", f"model.depth={depth}", f"model.width={width}",
                 f"trainer.batch_size={batch}", "model.activation=sigmoid", "model.loss=mse",
                 "optimizer.lr=0.01", "tracking.enabled=false", "trainer.log_every=1000000000"]  # fmt: skip
    cfg = validate(bpstudy.compose(overrides))
    trainer = make_trainer(cfg, load_data(cfg))
    X, y = trainer.data.X_train[:batch], trainer.data.y_train[:batch]
    trainer.step = 1  # step 0 is always a logging step; start after it
    sweeps = {"calls": 0, "free": 0, "other": 0}

    def step():
        trainer.train_step(X, y)
        trainer.step = 1
        settles = trainer.batch.settle
        if settles:
            sweeps["calls"] += 1
            sweeps["free"] += settles[0].iterations
            sweeps["other"] += sum(s.iterations for s in settles[1:])

    return step, lambda: trainer.net.forward(X, train=True), trainer.rule, trainer.net, sweeps


def step_products(net, batch: int, kind: str):
    """The matrix products, and nothing else, of one part of an energy-based step on
    `net` (energy.py): `full`, a sweep (per hidden layer its feedback product, the layer
    above's state times that layer's W^T, and past the first, whose input drive is made
    once per batch, its forward product; then the output's); `first`, a sweep from zero
    states (the feedforward products only); `clamped`, a sweep with the output held (no
    output product); `contrast`, the update's (per layer the input's transpose times the
    error, and past the first the error below's transpose times the state)."""
    rng = np.random.default_rng(0)
    Ws = [b.dense.W for b in net.blocks] + [net.output.W]
    ins = [rng.random((batch, W.shape[0])).astype(net.dtype) for W in Ws]
    outs = [rng.random((batch, W.shape[1])).astype(net.dtype) for W in Ws]
    fwd = [np.empty((batch, W.shape[1]), net.dtype) for W in Ws]
    back = [np.empty((batch, W.shape[0]), net.dtype) for W in Ws]
    grads = [np.empty(W.shape, net.dtype) for W in Ws]
    cross = [np.empty(W.shape, net.dtype) for W in Ws]
    depth = net.depth

    def sweep(feedback: bool, output: bool):
        for i in range(depth):
            if feedback:
                np.matmul(outs[i + 1], Ws[i + 1].T, out=back[i + 1])
            if i > 0:
                np.matmul(ins[i], Ws[i], out=fwd[i])
        if output:
            np.matmul(ins[-1], Ws[-1], out=fwd[-1])

    def contrast():
        for k in range(depth + 1):
            np.matmul(ins[k].T, outs[k], out=grads[k])
            if k > 0:
                np.matmul(outs[k - 1].T, outs[k], out=cross[k])

    parts = {
        "full": lambda: sweep(True, True),
        "first": lambda: sweep(False, True),
        "clamped": lambda: sweep(True, False),
        "contrast": contrast,
    }
    return parts[kind]


def energy_timing(threads_list: list[int], min_time: float, repeats: int) -> None:
    """ms/step of each energy-based rule against backprop on the same net, the settle
    sweeps per step (all phases), and issue 26's target: step <= sweeps x forward x 1.3
    (ratio <= 1). `products` is the ratio that the step's matrix products alone give:
    the free phase's first sweep from zero states (feedforward products only), its other
    sweeps, the other phases' sweeps (clamped: no output product), and the contrast, at
    the mean sweeps per phase over the timed calls (step_products). Any implementation
    of these sweeps and this contrast does at least these products."""
    print(f"{'threads':>7} {'net (DxWxB)':>13} {'rule':>23} {'ms/step':>8} {'x bp':>6} "
          f"{'sweeps':>7} {'fwd ms':>7} {'target ms':>9} {'ratio':>6} {'products':>8}")  # fmt: skip
    for threads in threads_list:
        with threadpool_limits(limits=threads):
            for depth, width in itertools.product((1, 3), (64, 256)):
                fns, rules, counts, forward = {}, {}, {}, None
                for name in ("backprop", "contrastive_hebbian", "equilibrium_propagation"):
                    fns[name], fwd, rules[name], net, counts[name] = energy_step(
                        name, depth, width, 64
                    )
                    forward = forward or fwd
                fns["forward"] = forward
                for kind in ("full", "first", "clamped", "contrast"):
                    fns[kind] = step_products(net, 64, kind)
                t = best_of(fns, min_time, repeats)
                for name in ("contrastive_hebbian", "equilibrium_propagation"):
                    c = counts[name]
                    free, other = c["free"] / c["calls"], c["other"] / c["calls"]
                    sweeps = free + other  # per step, over every timed call
                    other_kind = "clamped" if name == "contrastive_hebbian" else "full"
                    products = (t["first"] + (free - 1) * t["full"] + other * t[other_kind]
                                + t["contrast"])  # fmt: skip
                    target = sweeps * t["forward"] * 1.3
                    print(
                        f"{threads:>7} {f'{depth}x{width}x64':>13} {name:>23} "
                        f"{t[name] * 1e3:>8.3f} {t[name] / t['backprop']:>6.1f} {sweeps:>7.1f} "
                        f"{t['forward'] * 1e3:>7.3f} {target * 1e3:>9.3f} {t[name] / target:>6.2f}"
                        f" {products / target:>8.2f}",
                        flush=True,
                    )
                print(f"{threads:>7} {f'{depth}x{width}x64':>13} {'backprop':>23} "
                      f"{t['backprop'] * 1e3:>8.3f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="shorter timing rounds")
    parser.add_argument(
        "--diagnostics", action="store_true", help="only the diagnostics cost, paired rounds"
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds per figure")
    parser.add_argument("--theory", action="store_true", help="only bpstudy.theory.predict")
    parser.add_argument(
        "--energy", action="store_true", help="only the energy-based rules against backprop"
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time by this process's CPU time (with --threads 1: what the neighbours take is left out)",
    )
    args = parser.parse_args()
    min_time, repeats = (0.1, 3) if args.quick else (0.2, 7)
    repeats = args.repeats or repeats
    if args.theory:
        theory_timing(args.repeats or 20)
        return
    if args.energy:
        energy_timing(args.threads, min_time, repeats)
        return
    if args.diagnostics:
        clock = time.process_time if args.cpu else time.perf_counter
        diagnostics_cost(args.threads, min_time, repeats, clock)
        return
    print(
        f"numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch else ", torch not installed")
    )
    header = f"{'threads':>7} {'net (DxWxB)':>13} {'act':>5} {'ms/step':>8} {'GFLOP/s':>8} {'matmul':>8} {'%mm':>5} {'diag':>6}"
    header += f" {'torch ms':>9} {'ratio':>6}" if torch else ""
    print(header)
    for threads in args.threads:
        if torch:
            torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            for depth, width, batch in NETS:
                flops = 6 * n_weights(depth, width) * batch
                for activation in ("tanh", "relu"):
                    fns = {
                        "ours": ours(depth, width, batch, activation, 10**9),
                        "diag": ours(depth, width, batch, activation, 1),
                        "mm": matmuls(depth, width, batch),
                    }
                    if torch:
                        fns["torch"] = torch_step(depth, width, batch, activation)
                    t = best_of(fns, min_time, repeats)
                    line = (
                        f"{threads:>7} {f'{depth}x{width}x{batch}':>13} {activation:>5} {t['ours'] * 1e3:>8.3f} "
                        f"{flops / t['ours'] / 1e9:>8.1f} {flops / t['mm'] / 1e9:>8.1f} "
                        f"{100 * t['mm'] / t['ours']:>4.0f}% {t['diag'] / t['ours']:>6.2f}"
                    )
                    if torch:
                        line += f" {t['torch'] * 1e3:>9.3f} {t['ours'] / t['torch']:>6.2f}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
