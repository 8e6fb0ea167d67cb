"""The thread that sends a run's metric points to MLflow: it holds them and sends them in
few transactions, yet soon enough for the dashboard to follow a run still training."""

from __future__ import annotations

import threading

from bpstudy.tracking.points import write_points

FLUSH_SECONDS = 5.0  # the longest a point waits before it is sent
HOLD_POINTS = 10_000  # the most points sent at once (one transaction)


class Sender(threading.Thread):
    """Sends the points it holds every FLUSH_SECONDS, and at once past HOLD_POINTS;
    remembers the first failure for the caller.

    A commit writes every index page its points touched, so its cost grows far slower
    than its points: a depth-50 run's 7,500 points cost a SQLite store of 60 runs 0.2-0.3 s
    of CPU in batches of 1,000 and 0.1 s in one. And `put` does not wake the thread: on a machine
    whose cores BLAS keeps busy, each wake-up takes a slice from training."""

    def __init__(self, client, run_id: str) -> None:
        super().__init__(name="bpstudy-mlflow-sender", daemon=True)
        self.client, self.run_id = client, run_id
        self.error: Exception | None = None
        self.warm = threading.Event()  # matplotlib imported: the pictures may be drawn
        self._held: list = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finishing = False

    def put(self, metrics: list) -> None:
        """Hold points for the next send."""
        with self._lock:
            self._held.extend(metrics)
            full = len(self._held) >= HOLD_POINTS
        if full:
            self._wake.set()

    def run(self) -> None:
        from bpstudy.tracking.plots import warm_up

        try:
            warm_up()  # import matplotlib here, while training runs, not at the end
        finally:
            self.warm.set()  # two threads importing it at once can fail (circular import)
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            last = self._finishing  # read after clear: finish() sets it before waking us
            with self._lock:
                points, self._held = self._held, []
            self._send(points)
            if last:
                return

    def _send(self, metrics: list) -> None:
        if self.error is not None or not metrics:
            return
        try:
            write_points(self.client, self.run_id, metrics)
        except Exception as exc:  # noqa: BLE001 - reported by the tracker at the end
            self.error = exc

    def finish(self) -> None:
        """Send what is held and stop; `join` waits for it."""
        self._finishing = True
        self._wake.set()

    def close(self) -> None:
        self.finish()
        self.join()
