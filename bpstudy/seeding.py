"""One seed, one independent generator per purpose.

`trainer.seed` feeds a NumPy SeedSequence whose children are assigned to purposes by a
fixed index, so that drawing more from one (say, a larger network at init) never shifts
another (the data split, the shuffling order). New purposes are appended, never inserted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PURPOSES = ("init", "split", "shuffle", "dropout", "feedback", "data")


@dataclass(frozen=True)
class Seeds:
    seed: int

    def rng(self, purpose: str) -> np.random.Generator:
        """A fresh generator for `purpose`; the same call always gives the same stream."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown random purpose {purpose!r}; known: {', '.join(PURPOSES)}")
        child = np.random.SeedSequence(self.seed).spawn(len(PURPOSES))[PURPOSES.index(purpose)]
        return np.random.default_rng(child)
