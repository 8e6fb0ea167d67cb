"""What a run records of bpstudy.theory: its theory.* params and the predicted
first/last gradient ratio, beside the measured one (docs/theory.md)."""

from __future__ import annotations

import pandas as pd

from bpstudy.theory import Prediction

THEORY_RATIO = "theory/ratio_log10"  # beside the measured grad_norm/ratio_log10


def theory_params(p: Prediction) -> dict[str, str]:
    """The run's theory.* params: what mean-field theory predicts at initialisation, or
    why it does not apply (docs/theory.md)."""
    if not p.applicable:
        return {"theory.phase": "not applicable", "theory.reason": p.reason[:500]}
    return {
        "theory.q_star": f"{p.q_star:.6g}",
        "theory.chi1": f"{p.chi1:.6g}",
        "theory.xi_c": f"{p.xi_c:.6g}",
        "theory.phase": p.phase,
    }


def theory_line(theory: Prediction, step_stats: pd.DataFrame) -> str:
    """Predicted against measured: the first/last gradient ratio at the first logged step
    (initialisation, where the theory speaks) and, for comparison, at the last."""
    if not theory.applicable:
        return f"theory: not applicable: {theory.reason}"
    line = (
        f"theory: chi1 {theory.chi1:.4g} ({theory.phase}), xi_c {theory.xi_c:.3g}; "
        f"log10 |dW_1|/|dW_L| predicted {theory.ratio_log10:+.2f}"
    )
    ratios = step_stats.get("grad_norm/ratio_log10")
    if ratios is not None and len(ratios):
        line += f", measured {ratios.iloc[0]:+.2f} at the first logged step"
        line += f" ({ratios.iloc[-1]:+.2f} at the last)"
    return line
