"""Imported by the fork server that sweep workers are forked from (bpstudy.sweep.pool):
the import itself warms the server up, so that every forked worker starts warm.

The server ignores Ctrl-C and SIGTERM: they reach the whole process group (a terminal,
`timeout`, SLURM, systemd), and the server must neither print a traceback from the middle
of its warm-up nor die under live workers (their exit codes come through it). The
supervisor stops it with SIGKILL. It starts with both ignored already (see
`WorkerPool` in bpstudy.sweep.pool); setting them here again keeps that true when
multiprocessing restarts a dead server. Forked workers start with both ignored until
`run_job` installs its own handlers."""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

import os  # noqa: E402  (after the handlers, on purpose: so is everything below)

from bpstudy.sweep.orphans import exit_if_parent_ends, exit_without_teardown  # noqa: E402


def warm_up() -> None:
    """Import, and run once, what every trial needs: MLflow and its SQL store (unless the
    store is a server), Hydra's first compose, matplotlib's first drawing. Run by the fork
    server, while the supervisor checks the space and sets up the study; the first trial
    would otherwise pay seconds for them."""
    import mlflow  # noqa: F401

    import bpstudy.sweep.trial
    import bpstudy.sweep.worker  # noqa: F401
    from bpstudy.config.compose import compose
    from bpstudy.tracking import run  # noqa: F401
    from bpstudy.tracking.plots import warm_up as warm_up_plots

    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http:", "https:")):
        import sqlalchemy.orm
        from mlflow.store.tracking import sqlalchemy_store  # noqa: F401

        sqlalchemy.orm.configure_mappers()
    compose([])
    warm_up_plots(draw=True)


with exit_if_parent_ends():  # the command killed meanwhile: exit, not warm up for no one
    warm_up()
exit_without_teardown()
