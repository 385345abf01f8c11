"""Times dp-accounting's RDP accountant on the work of fl-dp's `accountant` bench.

Run by `cargo xtask bench-compare dp` (needs `pip install dp-accounting`); prints one JSON line
per task with the median of REPS wall-clock runs, in seconds.
"""
import json
import statistics
import sys
import time

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 7


def epsilon():
    acc = rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.1)), 10_000)
    return acc.get_epsilon(1e-5)


def calibrate():
    return dp_accounting.calibrate_dp_mechanism(
        rdp.RdpAccountant,
        lambda s: dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(s)), 10_000
        ),
        1.0,
        1e-5,
    )


for name, fn in [("epsilon", epsilon), ("calibrate", calibrate)]:
    fn()
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        value = fn()
        ts.append(time.perf_counter() - t0)
    print(json.dumps({"task": name, "median_s": statistics.median(ts), "value": float(value)}), flush=True)
