"""Explainability: attributions (captum), frequency-band ablation, map statistics, rendering, callbacks.

Used both by the training-time W&B callback (`ExplainCallback`) and by `cifake explain`.
"""

from .attributions import METHODS, explain_batch
from .bands import BandAblation

__all__ = ["METHODS", "BandAblation", "explain_batch"]
