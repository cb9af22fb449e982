"""Links and calibration: how a model's margins become the three class probabilities.

Two links (`ModelMeta.link`):

- `ordinal_normal`: one output, `eih_pct`, the expected change of the pressure pain
  threshold in percent. For eih ~ Normal(margin, sigma) and label threshold t,
  P(hypoalgesia) = P(eih >= +t), P(hyperalgesia) = P(eih <= -t), P(no change) the rest.
- `normal_spread`: two outputs, `eih_pct` (the expected change) and `log_sd` (the log of
  the spread of the measured change around it, in %-points), both depending on the person
  and the protocol; the probabilities follow from eih ~ Normal(eih_pct, exp(log_sd)) as above.
- `softmax`: one margin (log-odds) per response class, probabilities by softmax.

Calibration is an affine map of the raw margins, margin = raw / T + b (a temperature T
and a bias b per output; one T may serve every output), plus the ordinal model's spread
sigma. An affine map keeps
explanations exact: contributions scale by 1/T and b joins the base value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

SOFTMAX, ORDINAL, NORMAL_SPREAD = "softmax", "ordinal_normal", "normal_spread"
ORDINAL_OUTPUT = "eih_pct"
SPREAD_OUTPUT = "log_sd"
CHANGE_LINKS = (ORDINAL, NORMAL_SPREAD)
"""Links whose first output is the expected change of the pain threshold (in %-points)."""


def softmax(m: np.ndarray) -> np.ndarray:
    """Row-wise softmax of margins (n, K)."""
    z = m - m.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ordinal_proba(mu: np.ndarray, sigma: float | np.ndarray, threshold_pct: float) -> np.ndarray:
    """(n,) expected eih_pct -> (n, 3) P(hypoalgesia, no change, hyperalgesia) for
    eih ~ N(mu, sigma); sigma is one number or one per row."""
    mu = np.asarray(mu, dtype="float64")
    hypo = ndtr((mu - threshold_pct) / sigma)
    hyper = ndtr((-threshold_pct - mu) / sigma)
    return np.column_stack([hypo, np.clip(1.0 - hypo - hyper, 0.0, 1.0), hyper])


def margins_to_proba(margins: np.ndarray, link: str, sigma: float | None = None,
                     threshold_pct: float | None = None) -> np.ndarray:
    """Calibrated margins (n, K) -> class probabilities (n, 3) in RESPONSES order."""
    if link == ORDINAL:
        return ordinal_proba(margins[:, 0], sigma, threshold_pct)
    if link == NORMAL_SPREAD:
        return ordinal_proba(margins[:, 0], np.exp(margins[:, 1]), threshold_pct)
    return softmax(margins)


def spread_of(margins: np.ndarray, link: str, sigma: float | None = None) -> np.ndarray | None:
    """Each row's spread of the measured change in %-points (None for softmax models)."""
    if link == NORMAL_SPREAD:
        return np.exp(margins[:, 1])
    if link == ORDINAL:
        return np.full(len(margins), float(sigma))
    return None


@dataclass(frozen=True)
class MarginCalibration:
    """The affine map of the margins a model applies, and the ordinal model's spread."""

    temperature: float | tuple[float, ...] = 1.0
    bias: tuple[float, ...] = field(default_factory=tuple)
    sigma: float | None = None
    applied: bool = False

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw margins (n, K) -> calibrated margins (n, K)."""
        raw = np.asarray(raw, dtype="float64")
        raw = raw.reshape(len(raw), -1)
        return raw / self.temperature_array(raw.shape[1]) + self.bias_array(raw.shape[1])

    def temperature_array(self, n_outputs: int) -> np.ndarray:
        """The temperature of each output as a float64 vector of `n_outputs`."""
        t = np.asarray(self.temperature, dtype="float64")
        return np.full(n_outputs, float(t)) if t.ndim == 0 else t

    def bias_array(self, n_outputs: int) -> np.ndarray:
        """The bias as a float64 vector of `n_outputs` (zeros when none is stored)."""
        return np.asarray(self.bias or (0.0,) * n_outputs, dtype="float64")

    def to_dict(self) -> dict:
        """The JSON form stored in the model's metadata."""
        t = self.temperature
        d = {"temperature": [float(v) for v in t] if isinstance(t, (tuple, list)) else float(t),
             "bias": [float(v) for v in self.bias], "applied": bool(self.applied)}
        if self.sigma is not None:
            d["sigma"] = float(self.sigma)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MarginCalibration:
        """Inverse of `to_dict` (missing keys take the identity's values)."""
        sigma = d.get("sigma")
        t = d.get("temperature", 1.0)
        temperature = tuple(float(v) for v in t) if isinstance(t, list) else float(t)
        return cls(temperature, tuple(float(v) for v in d.get("bias", ())), None if sigma is None else float(sigma),
                   bool(d.get("applied", False)))
