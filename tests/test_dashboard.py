"""The MLflow dashboard as a user sees it: `bpstudy ui` on a finished 4-trial study, driven
in headless Chromium (Debian's chromium and chromium-driver, which .ci/run installs;
selenium from the test extra, pointed at them: no browser is downloaded).

Every wait is on a condition of the page (WebDriverWait), never a sleep. Screenshots go
to the test's folder, and also to $DASHBOARD_SCREENSHOTS when set (`make screenshots`
sets docs/figures: docs/make_screenshots.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bpstudy.tracking.ui import free_port, stop_group
from tests.conftest import FOREIGN_ENV, ctrl_c_as_in_a_terminal

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 45  # seconds for a page condition: the UI's first load on a busy 2-core machine
SCREENSHOTS_VAR = "DASHBOARD_SCREENSHOTS"


@dataclass
class Dashboard:
    page: str  # the address `bpstudy ui` printed
    base: str  # http://127.0.0.1:PORT
    optuna: str  # the address of optuna-dashboard beside it (--optuna)
    proc: subprocess.Popen  # bpstudy ui
    driver: object
    client: MlflowClient
    experiment_id: str
    parent_id: str
    children: dict[str, str]  # run id -> run name
    vanishing: str  # the run id of a vanishing trial
    shots: Path

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base}/#{path}")

    def run_page(self, run_id: str, tab: str = "") -> str:
        tab = f"/{tab}" if tab else ""
        return f"/experiments/{self.experiment_id}/runs/{run_id}{tab}?workflowType=machine_learning"

    def shot(self, name: str, publish: bool = True) -> Path:
        """Save a screenshot in the test's folder (and, when `publish`, the docs')."""
        path = self.shots / name
        self.driver.save_screenshot(str(path))
        extra = os.environ.get(SCREENSHOTS_VAR)
        if extra and publish:
            shutil.copy(path, Path(extra) / name)
        return path


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("CI without Debian's chromium and chromium-driver: .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1680,1200", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def dashboard(tiny_study, tmp_path_factory):
    """`bpstudy ui --optuna` on the tiny study's store and storage (free 127.0.0.1 ports)
    and a browser on it."""
    client = MlflowClient(tiny_study.uri)
    exp = client.get_experiment_by_name("bpstudy")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "optuna.trial" not in r.data.tags)
    children = {r.info.run_id: r.info.run_name for r in runs if "optuna.trial" in r.data.tags}
    vanishing = next(
        r.info.run_id for r in runs if r.data.tags.get("bpstudy.outcome") == "vanishing"
    )
    driver = _browser()  # skips before any server starts, when there is no browser
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    exe = Path(sys.executable).with_name("bpstudy")
    port, optuna_port = free_port(), free_port()
    try:
        with ctrl_c_as_in_a_terminal():  # its Ctrl-C works even in a suite run in the background
            proc = subprocess.Popen(
                [str(exe), "ui", "--port", str(port), "--tracking-uri", tiny_study.uri,
                 "--optuna", "--optuna-port", str(optuna_port)],
                cwd=tiny_study.folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
                env={**env, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
    except BaseException:
        driver.quit()
        raise
    try:
        line = proc.stdout.readline()  # printed once the server answers
        found = re.search(r"(http://127\.0\.0\.1:\d+)(/\S*)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        optuna = re.search(
            r"^optuna-dashboard on journal:\S+: (http://127\.0\.0\.1:\d+/)", proc.stdout.readline()
        )
        assert optuna and optuna.group(1) == f"http://127.0.0.1:{optuna_port}/"
        yield Dashboard(
            page=found.group(1) + found.group(2),
            base=found.group(1),
            optuna=optuna.group(1),
            proc=proc,
            driver=driver,
            client=client,
            experiment_id=exp.experiment_id,
            parent_id=parent.info.run_id,
            children=children,
            vanishing=vanishing,
            shots=tmp_path_factory.mktemp("screenshots"),
        )
    finally:
        driver.quit()
        stop_group(proc)  # whatever happened, no server is left (test_ctrl_c_stops_both)


def wait(d: Dashboard, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d.driver, WAIT).until(lambda _: condition(), message=what)


def elements(d: Dashboard, css: str) -> list:
    from selenium.webdriver.common.by import By

    return d.driver.find_elements(By.CSS_SELECTOR, css)


def with_text(d: Dashboard, text: str) -> list:
    from selenium.webdriver.common.by import By

    return d.driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']")


def body_text(d: Dashboard) -> str:
    return elements(d, "body")[0].text if elements(d, "body") else ""


def close_assistant(d: Dashboard) -> None:
    """MLflow's assistant panel takes a third of the window; closed for the screenshots."""
    for button in elements(d, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()


def show_children(d: Dashboard) -> None:
    """Expand the parent run's row in the runs table (once per browser: MLflow keeps it)."""
    wait(d, lambda: elements(d, f"[role=row][row-id='{d.parent_id}']"), "the parent run's row")
    if not elements(d, f"[role=row][row-id='{next(iter(d.children))}']"):
        row = elements(d, f"[role=row][row-id='{d.parent_id}']")[0]
        row.find_element("css selector", "button[data-component-id*='runnamecellrenderer']").click()
    wait(
        d,
        lambda: all(elements(d, f"[role=row][row-id='{r}']") for r in d.children),
        "the child runs",
    )


def scroll_to(d: Dashboard, element) -> None:
    d.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)


def search_charts(d: Dashboard, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = wait(d, lambda: elements(d, "input[placeholder='Search metric charts']"), "chart search")
    box[0].send_keys(Keys.CONTROL, "a")  # a search left from the page before (same app)
    box[0].send_keys(Keys.BACKSPACE)
    box[0].send_keys(text)


def test_the_study_opens_in_the_model_training_view(dashboard):
    d = dashboard
    assert d.page == f"{d.base}/#/experiments/{d.experiment_id}/runs?workflowType=machine_learning"
    d.driver.get(d.page)
    wait(d, lambda: elements(d, f"[role=row][row-id='{d.parent_id}']"), "the study's parent run")
    assert f"/experiments/{d.experiment_id}/runs" in d.driver.current_url
    # the model-training navigation: Runs and Models, none of the GenAI view's pages
    nav = {e.text for e in elements(d, "a") if e.text}
    assert {"Runs", "Models"} <= nav
    assert not with_text(d, "Judges") and not with_text(d, "Evaluation runs")
    close_assistant(d)
    d.shot("dashboard_runs.png", publish=False)


def test_the_parent_run_lists_its_child_runs(dashboard):
    d = dashboard
    d.driver.get(d.page)
    show_children(d)
    shown = {a.text for a in elements(d, "[role=row] a[href*='/runs/']")}
    assert set(d.children.values()) <= shown
    assert all(name.startswith("#") for name in d.children.values())


def test_a_childs_outcome_tag_is_visible(dashboard):
    d = dashboard
    d.open(d.run_page(d.vanishing))
    cells = wait(d, lambda: with_text(d, "bpstudy.outcome"), "the bpstudy.outcome tag")
    holder = cells[0].find_element("xpath", "./ancestor::*[contains(., 'vanishing')][1]")
    assert "vanishing" in holder.text


def test_the_profile_chart_overlays_every_trial(dashboard):
    d = dashboard
    d.driver.get(d.page.replace("?", "?compareRunsMode=CHART&"))
    show_children(d)
    close_assistant(d)
    search_charts(d, "profile_by_layer")
    first = "profile_by_layer/grad_norm_log10_first"

    def drawn():  # the chart's card, once its plot and legend list every trial
        for title in with_text(d, first):
            plot = "./ancestor::*[.//*[contains(@class, 'js-plotly-plot')]][1]"
            card = title.find_elements("xpath", plot)
            if card and all(name in card[0].text for name in d.children.values()):
                return title
        return None

    title = wait(d, drawn, f"the {first} chart, a line per trial")
    assert with_text(d, "profile_by_layer/predicted_log10")
    scroll_to(d, title)
    d.shot("dashboard_profile.png")


def test_the_heatmap_image_loads(dashboard):
    d = dashboard
    d.open(d.run_page(d.vanishing, "model-metrics"))
    close_assistant(d)
    search_charts(d, "plots/grad_flow")
    wait(d, lambda: with_text(d, "plots/grad_flow"), "the heatmap's card")

    def loaded():
        images = [i for i in elements(d, "img") if i.get_attribute("src").startswith("blob:")]
        return images and all(
            d.driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            for i in images
        )

    wait(d, loaded, "the heatmap image loaded (naturalWidth > 0)")
    # MLflow's image card lists the run's params above the picture: scrolled to it
    scroll_to(d, next(i for i in elements(d, "img") if i.get_attribute("src").startswith("blob:")))
    d.shot("dashboard_heatmap.png")


def test_a_vanishing_trials_layer_chart_has_distinct_ticks(dashboard):
    """Its grad_norm/L01 is about 1e-20: on a linear axis every tick read 0; its log10
    companion's ticks differ."""
    d = dashboard
    d.open(d.run_page(d.vanishing, "model-metrics"))
    search_charts(d, "grad_norm_log10/L01")

    def ticks():
        labels = [t.text for t in elements(d, "g.ytick text")]
        return labels if len(set(labels)) >= 2 else None

    labels = wait(d, ticks, "y tick labels on grad_norm_log10/L01")
    assert all(float(t.replace("−", "-")) < -5 for t in labels), labels


def test_the_documented_clicks_show_the_studys_columns(dashboard):
    """MLflow's API cannot choose the runs table's columns: docs/dashboard.md gives the
    clicks (Columns, then each name in its search box), done here as written."""
    from selenium.webdriver.common.keys import Keys

    d = dashboard
    d.driver.get(d.page)
    show_children(d)
    close_assistant(d)
    wanted = ["model.depth", "model.activation", "bpstudy.outcome", "val/loss"]
    for name in wanted:
        button = wait(
            d, lambda: [b for b in elements(d, "button") if b.text.strip() == "Columns"], "Columns"
        )
        button[0].click()
        box = wait(d, lambda: elements(d, "input[placeholder='Search columns']"), "column search")
        box[0].send_keys(name)
        node = f"//div[contains(@class, 'tree-treenode')][normalize-space(.)='{name}']"
        option = wait(d, lambda n=node: d.driver.find_elements("xpath", n), f"{name}'s option")
        ticks = option[0].find_elements("css selector", "[class*='tree-checkbox']")
        (ticks or option)[0].click()
        box[0].send_keys(Keys.ESCAPE)
    headers = lambda: {h.text for h in elements(d, "[role=columnheader]")}  # noqa: E731
    wait(d, lambda: set(wanted) <= headers(), "the four columns")
    for bar in elements(d, ".ag-body-horizontal-scroll-viewport"):  # to the new columns
        d.driver.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", bar)
    d.shot("dashboard_columns.png")


def test_optuna_dashboard_shows_the_study(dashboard):
    d = dashboard
    d.driver.get(d.optuna)  # it sends the browser on to its /dashboard page
    listed = lambda: re.search(r"^\d+\. tiny$", body_text(d), re.MULTILINE)  # noqa: E731
    wait(d, listed, "the study's name on optuna-dashboard ('0. tiny')")
    assert d.driver.current_url.startswith(f"{d.optuna}dashboard")
    d.shot("optuna_dashboard.png", publish=False)


def test_ctrl_c_stops_both(dashboard, ctrl_c):
    """Last in this file: the servers stop (the fixture's stop is for a failed test)."""
    import socket
    from urllib.parse import urlparse

    d = dashboard
    d.proc.send_signal(signal.SIGINT)  # as Ctrl-C in its terminal
    assert d.proc.wait(timeout=30) == 0
    assert d.proc.stdout.read() == "MLflow UI stopped\noptuna-dashboard stopped\n"
    for url in (d.base, d.optuna):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", urlparse(url).port))  # free again: the server stopped
