"""Statistics for trials: per-side summaries and the 95% interval of a difference of means.

Written out here (no scipy): patchq runs on lab machines where the benchmark's own Python may be all there is. The
Student t quantile comes from the regularized incomplete beta function (continued fraction), inverted by bisection;
Welch's interval uses the Welch–Satterthwaite degrees of freedom, which need not be whole numbers.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from dataclasses import dataclass

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Summary:
    """One side of a trial: every value it measured, and their mean and sample standard deviation."""

    n: int
    mean: float | None
    sd: float | None                 # None with fewer than two values
    values: tuple[float, ...]


@dataclass(frozen=True)
class Interval:
    """The difference candidate − baseline with its interval, and how the interval was made."""

    value: float
    low: float
    high: float
    method: str                      # "welch" | "bootstrap" | "one-sample-t" | "none"
    df: float | None = None
    confidence: float = CONFIDENCE
    note: str = ""


def summarize(values: list[float] | tuple[float, ...]) -> Summary:
    vals = tuple(float(v) for v in values)
    if not vals:
        return Summary(0, None, None, ())
    mean = math.fsum(vals) / len(vals)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return Summary(len(vals), mean, sd, vals)


# ---- Student's t ------------------------------------------------------------------------------------------------

def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, evaluated by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 400):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):          # the fraction converges fast on this side; use symmetry otherwise
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (any positive real)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, by bisection on the monotone CDF (60 halvings: below 1e-12 of the bracket)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be between 0 and 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    high = 2.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# ---- intervals ---------------------------------------------------------------------------------------------------

def welch_interval(baseline: Summary, candidate: Summary, confidence: float = CONFIDENCE) -> Interval:
    """Welch's t interval for mean(candidate) − mean(baseline); the two sides may have different variances."""
    if baseline.n < 2 or candidate.n < 2:
        raise ValueError("Welch's interval needs at least two values a side")
    assert baseline.mean is not None and candidate.mean is not None and baseline.sd is not None \
        and candidate.sd is not None
    diff = candidate.mean - baseline.mean
    va, vb = baseline.sd ** 2 / baseline.n, candidate.sd ** 2 / candidate.n
    se = math.sqrt(va + vb)
    if se == 0.0:                                   # both sides constant: the data leave no doubt about the gap
        return Interval(diff, diff, diff, "welch", None, confidence, "both sides constant: zero-width interval")
    df = (va + vb) ** 2 / (va ** 2 / (baseline.n - 1) + vb ** 2 / (candidate.n - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return Interval(diff, diff - half, diff + half, "welch", df, confidence)


def one_sample_interval(candidate: Summary, reference: float, confidence: float = CONFIDENCE) -> Interval:
    """The t interval for mean(candidate) − a recorded value taken as exact (a record without its repeats)."""
    if candidate.n < 2:
        raise ValueError("an interval needs at least two values")
    assert candidate.mean is not None and candidate.sd is not None
    diff = candidate.mean - reference
    se = candidate.sd / math.sqrt(candidate.n)
    if se == 0.0:
        return Interval(diff, diff, diff, "one-sample-t", None, confidence, "constant values: zero-width interval")
    df = float(candidate.n - 1)
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return Interval(diff, diff - half, diff + half, "one-sample-t", df, confidence)


def bootstrap_interval(baseline: Summary, candidate: Summary, confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """Percentile bootstrap of the difference of means, seeded from the data so a rerun gives the same interval."""
    if baseline.n < 2 or candidate.n < 2:
        raise ValueError("a bootstrap needs at least two values a side")
    seed = hashlib.sha256(struct.pack(f"{baseline.n + candidate.n}d", *baseline.values, *candidate.values)).digest()
    rng = random.Random(seed)
    a, b = baseline.values, candidate.values
    diffs = sorted(math.fsum(rng.choices(b, k=len(b))) / len(b) - math.fsum(rng.choices(a, k=len(a))) / len(a)
                   for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    assert baseline.mean is not None and candidate.mean is not None
    low = diffs[int(math.floor(tail * (resamples - 1)))]
    high = diffs[int(math.ceil((1.0 - tail) * (resamples - 1)))]
    return Interval(candidate.mean - baseline.mean, low, high, "bootstrap", None, confidence,
                    f"percentile bootstrap, {resamples} resamples")


def difference(baseline: Summary, candidate: Summary, method: str = "welch",
               confidence: float = CONFIDENCE) -> Interval | None:
    """The interval by the asked method, or None when the data cannot give one (fewer than two values a side)."""
    if baseline.n < 2 or candidate.n < 2:
        return None
    if method == "bootstrap":
        return bootstrap_interval(baseline, candidate, confidence)
    return welch_interval(baseline, candidate, confidence)
