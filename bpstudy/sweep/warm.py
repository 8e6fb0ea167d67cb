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

from bpstudy.sweep.worker import warm_up  # noqa: E402  (after the handlers, on purpose)

warm_up()
