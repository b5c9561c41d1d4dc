"""Warn when training diverges while every value is still finite: a loss (or a network's largest weight)
far above its recent range. Fed at print time with values already on the host, so it costs no sync."""

import math
import statistics
from collections import deque

# A value this many times its running median (of the last WINDOW printed values) is a divergence ...
FACTOR = 1e3
WINDOW = 20
# ... once there are MIN_HISTORY values to take a median of. Medians below FLOOR count as FLOOR: a loss
# of 1e-5 that grows to 0.5 is a discriminator losing its edge, not a blow-up.
MIN_HISTORY = 5
FLOOR = 1.0


class DivergenceMonitor:
    """Running medians of printed values; update() returns one warning line per series that newly diverged."""

    def __init__(self) -> None:
        self.history: dict[str, deque] = {}
        self.diverged: set[str] = set()

    def update(self, values: dict[str, float], when: str) -> list[str]:
        """Take one print step's values ({name: value}); warn for those above FACTOR x their running median."""
        warnings = []
        for name, value in values.items():
            if not math.isfinite(value):  # NaN/Inf are check_finite's: they stop the run
                continue
            history = self.history.setdefault(name, deque(maxlen=WINDOW))
            if len(history) >= MIN_HISTORY:
                median = statistics.median(history)
                if abs(value) > FACTOR * max(abs(median), FLOOR):
                    if name not in self.diverged:
                        self.diverged.add(name)
                        warnings.append(
                            f"warning: {name} is {value:.3g} at {when}, over {FACTOR:g}x its recent median {median:.3g}: "
                            f"training is diverging (lower --lr, or resume from an earlier checkpoint); "
                            f"--no_divergence_check silences this"
                        )
                    continue  # a diverged value does not become the new normal
            self.diverged.discard(name)
            history.append(value)
        return warnings
