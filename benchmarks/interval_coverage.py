"""How often a 95% interval of a difference of means covers the true difference (0), with few repeats.

Why `patchq trial` keeps Welch's interval as its default even with 3 runs a side: the percentile bootstrap can
only reshuffle the few values it has and so understates the noise. Two equal normal sides, N trials:

    python benchmarks/interval_coverage.py [repeats] [trials]
"""

from __future__ import annotations

import random
import sys

from patchq.stats import bootstrap_interval, summarize, welch_interval


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rng = random.Random(1)
    welch = boot = 0
    for _ in range(trials):
        a = summarize([rng.gauss(0, 1) for _ in range(n)])
        b = summarize([rng.gauss(0, 1) for _ in range(n)])
        w = welch_interval(a, b)
        s = bootstrap_interval(a, b, resamples=2000)
        welch += w.low <= 0 <= w.high
        boot += s.low <= 0 <= s.high
    print(f"{n} repeats a side, {trials} trials: Welch covers {welch / trials:.0%}, bootstrap {boot / trials:.0%}")


if __name__ == "__main__":
    main()
