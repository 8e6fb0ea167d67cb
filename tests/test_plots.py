"""The run pictures: each thread keeps its figures and redraws them for the next run, so a
picture must not depend on what the thread drew before it."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from bpstudy.tracking.plots import grad_flow_png, loss_png


def layer_stats(depth: int, steps: int, low: float, high: float) -> pd.DataFrame:
    values = np.logspace(np.log10(low), np.log10(high), depth * steps)
    rng = np.random.default_rng(depth)
    frame = pd.DataFrame(
        {
            "step": np.repeat(np.arange(steps) * 10, depth),
            "layer": np.tile(np.arange(1, depth + 1), steps),
            "grad_norm": rng.permutation(values),
            "delta_norm": values,
        }
    )
    frame.loc[3, "grad_norm"] = np.inf  # a diverged point: drawn as missing
    return frame


def history(steps: int, top: float, keys: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({"step": np.arange(steps) * 20})
    for i, key in enumerate(keys):
        frame[key] = np.linspace(top, 1.0 + i, steps)
    return frame


def pixels(draw) -> np.ndarray:
    buffer = io.BytesIO()
    draw(buffer)
    buffer.seek(0)
    return imread(buffer, format="png")


def call_in_new_thread(fn):
    """fn() in a new thread (one with no kept figures); its result, or its error raised here."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def in_new_thread(*draws) -> list[np.ndarray]:
    """Each draw's pixels, drawn in order in one new thread."""
    return call_in_new_thread(lambda: [pixels(d) for d in draws])


BOTH = ("train/loss", "val/loss")
CASES = {
    "heatmap after a deeper, wider-ranged one": (
        lambda f: grad_flow_png(layer_stats(50, 100, 1e-9, 1e3), f, title="first"),
        lambda f: grad_flow_png(layer_stats(4, 7, 0.1, 2.0), f, title="second"),
    ),
    "heatmap of another statistic": (
        lambda f: grad_flow_png(layer_stats(6, 9, 1e-3, 1.0), f, stat="delta_norm"),
        lambda f: grad_flow_png(layer_stats(6, 9, 1e-3, 1.0), f),
    ),
    "linear loss after a log-scaled one": (
        lambda f: loss_png(history(40, 1e4, BOTH), f, title="first"),
        lambda f: loss_png(history(5, 3.0, BOTH), f, title="second"),
    ),
    "log-scaled loss after a linear one": (
        lambda f: loss_png(history(5, 3.0, BOTH), f),
        lambda f: loss_png(history(40, 1e4, BOTH), f),
    ),
    "one curve after two": (
        lambda f: loss_png(history(6, 4.0, BOTH), f),
        lambda f: loss_png(history(6, 4.0, ("train/loss",)), f),
    ),
    "curves after a run with none": (
        lambda f: loss_png(pd.DataFrame({"step": []}), f),
        lambda f: loss_png(history(6, 4.0, BOTH), f),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_picture_does_not_depend_on_the_one_drawn_before(case):
    before, picture = CASES[case]
    (fresh,) = in_new_thread(picture)
    _, after = in_new_thread(before, picture)
    first, _ = in_new_thread(before, picture)
    assert fresh.shape == after.shape
    assert not np.array_equal(first, fresh)  # the two pictures differ: the test can fail
    assert np.array_equal(after, fresh)


def test_threads_keep_their_own_figures():
    """Two threads drawing at once each get their own picture."""
    pictures = {
        "deep": lambda f: grad_flow_png(layer_stats(30, 50, 1e-6, 1.0), f, title="deep"),
        "shallow": lambda f: grad_flow_png(layer_stats(3, 5, 0.5, 2.0), f, title="shallow"),
    }
    expected = {name: in_new_thread(draw)[0] for name, draw in pictures.items()}
    got: dict[str, list[np.ndarray]] = {name: [] for name in pictures}
    start = threading.Barrier(2)

    def draw_many(name: str) -> None:
        start.wait()
        got[name].extend(pixels(pictures[name]) for _ in range(5))

    threads = [threading.Thread(target=draw_many, args=(name,)) for name in pictures]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in pictures:
        assert len(got[name]) == 5
        assert all(np.array_equal(p, expected[name]) for p in got[name])


def test_the_picture_says_what_it_shows():
    """The kept figure after a draw: colour range, labels and legend of this run's data."""
    from bpstudy.tracking import plots

    def check() -> None:
        stats = layer_stats(5, 8, 1e-4, 10.0)
        grad_flow_png(stats, io.BytesIO(), stat="delta_norm", title="flow")
        heat = plots._kept.figures["grad_flow"]
        logs = np.log10(stats["delta_norm"])
        assert heat.image.get_clim() == pytest.approx((logs.min(), logs.max()))
        assert heat.bar.ax.get_ylabel() == "log10 delta_norm"
        assert heat.ax.get_title() == "flow"
        assert heat.ax.get_ylim() == (0.5, 5.5)
        assert heat.ax.get_xlim() == (0, 70)

        loss_png(history(30, 1e3, ("train/loss",)), io.BytesIO(), title="curve")
        curve = plots._kept.figures["loss"]
        assert [t.get_text() for t in curve.ax.get_legend().get_texts()] == ["train/loss"]
        assert curve.ax.get_yscale() == "log"
        assert curve.ax.get_title() == "curve"

    call_in_new_thread(check)  # no figure kept from other tests
