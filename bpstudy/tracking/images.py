"""Pictures where the charts are: a run's (or a report's) PNGs logged as MLflow images.

An artifact shows only under the run's Artifacts tab. An image logged with a key and a
step (`MlflowClient.log_image`) shows in the run's chart view and in the Runs page's
chart view, beside the metrics (docs/dashboard.md). The files stay artifacts too: the
image copies are MLflow's own (`images/KEY+step+...png` and a compressed .webp).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def image_prefix(folder: str) -> str:
    """An artifact folder as an image key's prefix: MLflow takes letters, digits and
    _ - . / and spaces (report/model.depth=40 -> report/model.depth_40)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", folder)


def image_key(path: Path, prefix: str) -> str:
    """plots/grad_flow.png under 'plots' -> plots/grad_flow."""
    return f"{prefix}/{path.stem}"


def log_images(client, run_id: str, paths: Iterable[Path], prefix: str, step: int) -> list[str]:
    """Log each PNG as an image under PREFIX/STEM at `step`; returns the keys."""
    from PIL import Image

    keys = []
    for path in paths:
        key = image_key(path, prefix)
        with Image.open(path) as image:
            image.load()
            client.log_image(run_id, image, key=key, step=step, synchronous=True)
        keys.append(key)
    return keys
