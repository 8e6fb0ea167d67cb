"""The network: layers, activations, initialisation, losses."""

from __future__ import annotations

from bpstudy.model.network import Architecture, HiddenBlock, Network

__all__ = ["Architecture", "HiddenBlock", "Network"]
