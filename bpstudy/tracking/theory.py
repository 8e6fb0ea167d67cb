"""What a run records of bpstudy.theory: its theory.* params and the predicted
first/last gradient ratio, beside the measured one (docs/theory.md)."""

from __future__ import annotations

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
