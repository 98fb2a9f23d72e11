"""Release check: ``import geofm`` stays light and cheap next to ``import timm``.

Two checks, each in fresh subprocesses of the current interpreter (so whatever
environment runs the script is the one measured, e.g. a wheel installed into a
clean virtual environment by ``nox -s release``):

1. ``import geofm`` must not import ``rasterio`` or ``huggingface_hub``
   (DESIGN.md: both are imported inside the functions that need them).
2. What geofm adds on top of ``import timm``: each subprocess imports timm, then
   times ``import geofm`` and then ``import geofm.backbones`` (the backbone
   registry, loaded on the first ``geofm.create_backbone``). The median over
   ``--runs`` subprocesses must be at most ``--budget`` seconds (default 0.3 s)
   for both. Timing inside the process after timm is loaded isolates geofm's own
   cost; on a shared machine whole-interpreter start-up times swing by seconds,
   which would drown a 0.3 s budget. The whole-process wall times of
   ``python -c "import timm"`` and ``python -c "import timm, geofm"`` are
   printed too, for information.

Exit status 0 when every check passes, 1 otherwise (one line per failure).

Run:
    python benchmarks/check_import.py
    python benchmarks/check_import.py --runs 9 --budget 0.3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

_FORBIDDEN = ("rasterio", "huggingface_hub")

_MODULES_PROBE = """
import json, sys
import geofm
print(json.dumps(sorted(m for m in {forbidden!r} if m in sys.modules)))
"""

_TIMING_PROBE = """
import json, time
import timm
t0 = time.perf_counter()
import geofm
t1 = time.perf_counter()
import geofm.backbones
t2 = time.perf_counter()
print(json.dumps({"geofm": t1 - t0, "geofm.backbones": t2 - t1}))
"""


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def _wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="subprocesses per measurement")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds geofm may add")
    args = parser.parse_args(argv)

    failures: list[str] = []
    loaded = json.loads(_run(_MODULES_PROBE.format(forbidden=_FORBIDDEN)))
    print(f"modules loaded by 'import geofm' among {list(_FORBIDDEN)}: {loaded or 'none'}")
    if loaded:
        failures.append(f"'import geofm' imported {loaded}; expected none of {list(_FORBIDDEN)}.")

    added: dict[str, list[float]] = {"geofm": [], "geofm.backbones": []}
    walls: dict[str, list[float]] = {"import timm": [], "import timm, geofm": []}
    for _ in range(args.runs):  # interleaved, so background load hits all alike
        for key, value in json.loads(_run(_TIMING_PROBE)).items():
            added[key].append(value)
        for code in walls:
            walls[code].append(_wall(code))

    for code, times in walls.items():
        print(f"python -c {code!r:24} wall median {statistics.median(times):.2f} s")
    for name, times in added.items():
        median = statistics.median(times)
        verdict = "ok" if median <= args.budget else "FAIL"
        print(
            f"'import {name}' after 'import timm': median {median:.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs), "
            f"budget {args.budget:.2f} s: {verdict}"
        )
        if median > args.budget:
            failures.append(
                f"'import {name}' adds {median:.3f} s to 'import timm'; budget {args.budget} s."
            )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
