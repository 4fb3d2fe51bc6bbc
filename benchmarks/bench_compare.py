"""Compare this checkout's runtime with another's (say, the commit before a restructuring), interleaved.

Run: ``python benchmarks/bench_compare.py --base /path/to/other/checkout [--rounds 7]``. Each round runs
the same measuring script once against each checkout, in fresh processes, alternating which goes first,
so a slow spell of the shared machine hits both alike. Prints round trip (median and p99), a 64 MiB
array from a VM to VM 0 and back, and VM start, with the ratio new / base (a ratio <= 1.05 is "within
5%"). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Runs in a fresh VM 0 with the checkout under test first on sys.path; prints one JSON line.
MEASURE = r"""
import json, statistics, sys, time
import numpy as np
import runtime
from runtime import ComputeThread

out = {}
start = time.perf_counter()
with ComputeThread(1) as t:
    t.exec("def echo(x):\n    return x")
    out["first_vm_ms"] = (time.perf_counter() - start) * 1e3
    rts = []
    for i in range(ROUND_TRIPS + 200):
        begin = time.perf_counter()
        t.submit_call("echo", i)
        t.wait_for_done()
        t.last_retval()
        rts.append(time.perf_counter() - begin)
    rts = sorted(rts[200:])
    out["rt_median_us"] = statistics.median(rts) * 1e6
    out["rt_p99_us"] = rts[int(0.99 * len(rts))] * 1e6
    t.exec("import numpy as np\nbig = np.ones(16 << 20, dtype=np.float32)")
    array = np.ones(16 << 20, dtype=np.float32)
    t.eval("big.sum()"); t.call("len", array)  # warm the segment pools
    frm, to = [], []
    for _ in range(5):
        begin = time.perf_counter(); t.submit_eval("big"); t.wait_for_done(); t.last_retval()
        frm.append(time.perf_counter() - begin)
        begin = time.perf_counter(); t.call("len", array); to.append(time.perf_counter() - begin)
    out["from_vm_64mib_ms"] = min(frm) * 1e3
    out["to_vm_64mib_ms"] = min(to) * 1e3
with ComputeThread(2) as t:
    begin = time.perf_counter(); t.eval("1"); out["second_vm_ms"] = (time.perf_counter() - begin) * 1e3
print(json.dumps(out))
"""

ROWS = [
    ("rt_median_us", "round trip, median", "us"),
    ("rt_p99_us", "round trip, p99", "us"),
    ("to_vm_64mib_ms", "64 MiB array to a VM (best of 5)", "ms"),
    ("from_vm_64mib_ms", "64 MiB array from a VM (best of 5)", "ms"),
    ("first_vm_ms", "first VM ready (template start included)", "ms"),
    ("second_vm_ms", "second VM ready", "ms"),
]


def measure(root: Path, round_trips: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    script = MEASURE.replace("ROUND_TRIPS", str(round_trips))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"the measuring script failed against {root}:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (its runtime/ is used)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--round-trips", type=int, default=3000, help="round trips per round (default 3000)")
    args = parser.parse_args()
    if not (args.base / "runtime" / "__init__.py").exists():
        parser.error(f"--base must be a checkout with runtime/__init__.py, got {args.base}")
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for index in range(args.rounds):
        order = [("base", args.base), ("new", HERE)]
        for name, root in order if index % 2 == 0 else order[::-1]:
            results[name].append(measure(root, args.round_trips))
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    print(f"\nbase: {args.base}\nnew:  {HERE}\nload average: {os.getloadavg()}")
    print(f"median over {args.rounds} interleaved rounds\n")
    header = f"{'what':44} {'base':>12} {'new':>12} {'new/base':>9}"
    print(header + "\n" + "-" * len(header))
    for key, label, unit in ROWS:
        base = statistics.median(r[key] for r in results["base"])
        new = statistics.median(r[key] for r in results["new"])
        print(f"{label:44} {base:9.1f} {unit} {new:9.1f} {unit} {new / base:8.3f}x")


if __name__ == "__main__":
    main()
