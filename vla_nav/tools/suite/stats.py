"""The suite's statistics: the Wilson score interval and per-tier rates (pure Python)."""
from __future__ import annotations

import math
from collections import Counter

Z95 = 1.959963984540054   # two-sided 95% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion: (low, high), both within [0, 1].

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n
    successes, which matters for the small per-tier samples of a quick run. trials == 0 gives the
    uninformative (0.0, 1.0).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials, got {successes} of {trials}')
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)      # exact ends (no float crumbs)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def rate(count: int, trials: int) -> dict:
    """{'rate', 'low', 'high', 'count'}: a proportion with its 95% Wilson interval."""
    low, high = wilson_interval(count, trials)
    return {'rate': round(count / trials, 4) if trials else None, 'low': round(low, 4),
            'high': round(high, 4), 'count': count}


def outcome_rates(records: list[dict]) -> dict:
    """Success / collision / timeout / failure rates (each with its interval) of some episodes."""
    counts = Counter(r['outcome'] for r in records)
    n = len(records)
    return {'episodes': n,
            **{name: rate(counts[name], n) for name in ('success', 'collision', 'timeout', 'failure')}}
