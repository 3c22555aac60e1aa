"""Calibration of P(fake) and the operating threshold, both fitted on validation scores only.

At the end of every validation epoch of `fit`, ImageClassifier keeps that epoch's validation logits and
labels; every checkpoint saved after it carries them (``checkpoint["cifake_val_scores"]``), so the
checkpoint's own weights are calibrated on their own validation pass, and any rule can be re-applied
later without the validation data (a test set is never used for either).

* Calibration (``calibration:`` of the model): ``temperature`` (Guo et al., ICML 2017: one scale
  1/T on the logit, fitted by minimising validation NLL; the 0.5 decision is unchanged), ``platt``
  (Platt 1999: a*logit + b, which can move the 0.5 decision), or ``none``.
* Threshold (``threshold:`` of the model): ``fpr:0.01`` (the lowest P(fake) threshold that calls at
  most 1% of validation reals fake: the operating point at a chosen false-alarm rate), ``youden``
  (max TPR - FPR on validation), or a number in (0, 1) used as is. It is expressed on the calibrated
  P(fake) (``threshold``) and on the raw logit (``threshold_logit``), which is what the decision uses.

When validation separates the classes perfectly, NLL keeps falling as the temperature shrinks; T is
then held at its lower bound (0.5: sharpening further only makes unseen sources' wrong answers more
confident) and `describe()` says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, NonFiniteError

T_MIN, T_MAX = 0.5, 100.0
#: bumped when fitting changes, so that calibrations stored by older code are refitted, not reused
CALIBRATION_VERSION = 3  # 3: a fit that does not lower validation NLL is declined
METHODS = ("temperature", "platt", "none")


def check_rule(threshold: str | float) -> str | float:
    """Validate a threshold rule; returns it normalised (a float, 'youden' or 'fpr:<x>')."""

    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        if not 0.0 < float(threshold) < 1.0:
            raise ConfigError("model.threshold", f"a fixed threshold must be in (0, 1), got {threshold}")
        return float(threshold)
    text = str(threshold).strip().lower()
    if text == "youden":
        return text
    if text.startswith("fpr:"):
        try:
            x = float(text[4:])
        except ValueError:
            x = -1.0
        if not 0.0 < x < 1.0:
            raise ConfigError("model.threshold", f"fpr:<x> needs 0 < x < 1, got {threshold!r}")
        return f"fpr:{x:g}"
    try:
        return check_rule(float(text))
    except ValueError:
        raise ConfigError(
            "model.threshold",
            f"expected fpr:<x> (e.g. fpr:0.01), youden or a number in (0, 1), got {threshold!r}",
        ) from None


def check_method(method: str) -> str:

    if method not in METHODS:
        raise ConfigError("model.calibration", f"expected one of {', '.join(METHODS)}, got {method!r}")
    return method


def nll(logit: torch.Tensor, label: torch.Tensor) -> float:
    return float(F.binary_cross_entropy_with_logits(logit.double(), label.double()))


def ece(prob: torch.Tensor, label: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error of P(fake) (torchmetrics' binary ECE, equal-width bins)."""
    # imported here: torchmetrics takes 4.7 s to import (it loads torchvision's models) and this module
    # is on the path of `cifake models` and `cifake predict FILES` (benchmarks/results/startup.md)
    from torchmetrics.functional.classification import binary_calibration_error

    return float(binary_calibration_error(prob.float(), label.long(), n_bins=bins, norm="l1"))


def fit_temperature(logit: torch.Tensor, label: torch.Tensor) -> float:
    """T in [T_MIN, T_MAX] minimising the NLL of sigmoid(logit / T): golden-section search on log T
    (the NLL is unimodal in log T for a fixed set of logits)."""
    z, y = logit.double(), label.double()

    def f(log_t: float) -> float:
        return float(F.binary_cross_entropy_with_logits(z / math.exp(log_t), y))

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    best = min((f(lo), lo), (f(hi), hi), (fa, a), (fb, b))[1]
    return float(math.exp(best))


def fit_platt(logit: torch.Tensor, label: torch.Tensor, l2: float = 1e-4) -> tuple[float, float]:
    """(a, b) minimising NLL of sigmoid(a*logit + b) plus a small L2 penalty (keeps a finite when the
    validation set is separable); a is kept positive so the ranking never flips."""
    z, y = logit.double(), label.double()
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        a = log_a.clamp(math.log(1 / T_MAX), math.log(1 / T_MIN)).exp()
        loss = F.binary_cross_entropy_with_logits(a * z + b, y) + l2 * (a**2 + b**2)
        loss.backward()
        return loss

    opt.step(closure)
    a = float(log_a.detach().clamp(math.log(1 / T_MAX), math.log(1 / T_MIN)).exp())
    return a, float(b.detach())


@dataclass(frozen=True)
class Calibration:
    """How raw logits become P(fake) and decisions: p = sigmoid(scale * logit + bias), fake iff
    logit >= threshold_logit (equivalently p >= threshold). Identity = no calibration, threshold 0.5."""

    method: str = "none"
    scale: float = 1.0
    bias: float = 0.0
    threshold: float = 0.5
    threshold_logit: float = 0.0
    rule: str = "0.5"
    n_real: int = 0
    n_fake: int = 0
    val_nll_raw: float = math.nan
    val_nll: float = math.nan
    val_ece_raw: float = math.nan
    val_ece: float = math.nan
    val_fpr: float = math.nan  # share of validation reals at or above the threshold
    val_tpr: float = math.nan
    at_bound: bool = False
    declined: bool = False  # the fitted scale/bias did not lower validation NLL: identity is used instead
    version: int = CALIBRATION_VERSION

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def logit(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float() * self.scale + self.bias

    def prob(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(raw))

    def decide(self, raw: torch.Tensor) -> torch.Tensor:
        """1 = fake, 0 = real, on raw logits (no rounding through probabilities)."""
        return (raw.float() >= self.threshold_logit).long()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in fields})

    def describe(self) -> str:
        if self.method == "none" and self.rule == "0.5":
            if self.n_real or self.n_fake:
                return (
                    f"raw sigmoid, threshold 0.5 (validation held {self.n_real} real and {self.n_fake} fake "
                    "images: calibration and threshold need both classes)"
                )
            return "raw sigmoid, threshold 0.5 (no validation scores stored)"
        if self.declined:
            cal = f"no calibration (a fitted {self.method} scaling did not lower validation NLL, so it is not used)"
        else:
            cal = {
                "temperature": f"temperature T={self.temperature:.3g}"
                + (" (at its bound)" if self.at_bound else ""),
                "platt": f"Platt a={self.scale:.3g} b={self.bias:.3g}"
                + (" (at its bound)" if self.at_bound else ""),
                "none": "no calibration",
            }[self.method]
        small = ""
        if self.rule.startswith("fpr:") and self.n_real * float(self.rule[4:]) < 1:
            small = (
                f"; WARNING: {self.n_real} validation reals cannot resolve an FPR of {self.rule[4:]} "
                f"(needs at least {math.ceil(1 / float(self.rule[4:]))}): use a larger data.val_size"
            )
        return (
            f"{cal}; threshold P(fake) >= {self.threshold:.4g} (rule {self.rule}: validation FPR {self.val_fpr:.4f}, "
            f"TPR {self.val_tpr:.4f}, on {self.n_real} real / {self.n_fake} fake validation images){small}"
        )


IDENTITY = Calibration()


def _threshold_logit(z: torch.Tensor, y: torch.Tensor, rule: str | float, cal: Calibration) -> float:
    """Decision threshold on the raw logit chosen by `rule` on validation logits z, labels y."""
    if isinstance(rule, float):  # fixed P(fake) threshold on the calibrated probability
        p = math.log(rule / (1 - rule))
        return (p - cal.bias) / cal.scale
    real, fake = z[y == 0].sort().values, z[y == 1]
    if rule == "youden":  # max TPR - FPR over "fake iff z >= t", t running over every score
        cand = torch.unique(z)
        fpr = 1 - torch.searchsorted(real, cand, right=False).double() / max(len(real), 1)
        tpr = 1 - torch.searchsorted(fake.sort().values, cand, right=False).double() / max(len(fake), 1)
        return float(cand[int(torch.argmax(tpr - fpr))])
    target = float(str(rule).split(":")[1])
    # fake iff z >= t; FPR(t) = share of reals >= t. Lowest t with FPR <= target: just above the
    # k-th largest real, k = floor(target * n_real).
    n = len(real)
    k = int(math.floor(target * n))
    if n == 0:
        return 0.0
    if k >= n:
        return float(real[0])
    v = float(real[n - 1 - k])
    return float(torch.nextafter(torch.tensor(v), torch.tensor(math.inf)))


def _helps(z: torch.Tensor, y: torch.Tensor, method: str) -> bool:
    """Whether calibrating lowers validation NLL on data it was not fitted on: two folds (even and odd
    rows), each calibrated on the other; fitted and scored on the same rows it would always "help"."""
    halves = [torch.arange(len(z))[i::2] for i in (0, 1)]
    if min(int(y[h].sum()) for h in halves) == 0 or min(int((y[h] == 0).sum()) for h in halves) == 0:
        return True  # too few of one class to cross-check: keep the fit (its describe() warns on small sets)
    raw, cal = 0.0, 0.0
    for fit_rows, score_rows in (halves, halves[::-1]):
        if method == "temperature":
            a, b = 1.0 / fit_temperature(z[fit_rows], y[fit_rows]), 0.0
        else:
            a, b = fit_platt(z[fit_rows], y[fit_rows])
        raw += nll(z[score_rows], y[score_rows])
        cal += nll(a * z[score_rows] + b, y[score_rows])
    return cal < raw


def fit(
    logit: torch.Tensor, label: torch.Tensor, method: str = "temperature", rule: str | float = "fpr:0.01"
) -> Calibration:
    """Fit calibration and threshold on validation logits/labels (0 real, 1 fake)."""
    z, y = logit.float().cpu().flatten(), label.long().cpu().flatten()
    method, rule = check_method(method), check_rule(rule)
    if not bool(torch.isfinite(z).all()):
        raise NonFiniteError(
            f"{int((~torch.isfinite(z)).sum())} of {z.numel()} validation logits are NaN or infinite: no "
            "calibration or threshold is fitted on them (the model diverged)"
        )
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    if n_real == 0 or (n_fake == 0 and not str(rule).startswith("fpr:")):
        return Calibration(rule="0.5", n_real=n_real, n_fake=n_fake)
    if n_fake == 0:  # an FPR rule needs reals only (a real-only detector's validation); no calibration
        method = "none"
    scale, bias, at_bound = 1.0, 0.0, False
    if method == "temperature":
        t = fit_temperature(z, y)
        scale, at_bound = 1.0 / t, t <= T_MIN * 1.001 or t >= T_MAX * 0.999
    elif method == "platt":
        scale, bias = fit_platt(z, y)
        at_bound = scale >= (1 / T_MIN) * 0.999 or scale <= (1 / T_MAX) * 1.001
    declined = method != "none" and not _helps(z, y, method)
    if declined:  # calibration is kept only where it makes validation probabilities better
        scale, bias, at_bound = 1.0, 0.0, False
    base = Calibration(method=method, scale=scale, bias=bias)
    t_logit = _threshold_logit(z, y, rule, base)
    cal_logit = z * scale + bias
    threshold = float(torch.sigmoid(torch.tensor(t_logit * scale + bias, dtype=torch.float64)))
    pred = z >= t_logit
    return Calibration(
        method=method,
        scale=scale,
        bias=bias,
        threshold=threshold,
        threshold_logit=float(t_logit),
        rule=str(rule),
        n_real=n_real,
        n_fake=n_fake,
        val_nll_raw=nll(z, y) if n_fake else math.nan,
        val_nll=nll(cal_logit, y) if n_fake else math.nan,
        val_ece_raw=ece(torch.sigmoid(z), y) if n_fake else math.nan,
        val_ece=ece(torch.sigmoid(cal_logit), y) if n_fake else math.nan,
        val_fpr=float(pred[y == 0].float().mean()),
        val_tpr=float(pred[y == 1].float().mean()) if n_fake else math.nan,
        at_bound=bool(at_bound),
        declined=bool(declined),
    )


def calibrated_prob(module, logit: torch.Tensor) -> torch.Tensor:
    """P(fake) of `logit` with the calibration of `module` (an ImageClassifier), or the raw sigmoid for a
    module without one (a bare backbone)."""
    cal = getattr(module, "calibration", None)
    return cal.prob(logit) if isinstance(cal, Calibration) else torch.sigmoid(logit.float())
