"""The fixed clock of the contract tests: the store never reads the time, it is told ``now``.

(Constants live here, not in conftest.py, because test modules cannot import a conftest.)
"""

T0 = 1_700_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
FAR = T0 + 10 * 365 * DAY  # later than anything a test schedules
