"""The long fuzz run: the properties of tests/test_fuzz.py with many more examples, and a count of how many ran.

    python benchmarks/fuzz_long.py                  # 20000 examples per property
    python benchmarks/fuzz_long.py --examples 200000 --only patch-reader

Exits 1 with hypothesis's minimal failing input when any reader lets a non-patchq exception escape.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, given, settings

from hostile.properties import PROPERTIES


def run_property(name: str, examples: int) -> tuple[int, float]:
    prop, strategy = PROPERTIES[name]
    count = [0]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def run(data: bytes) -> None:
        count[0] += 1
        prop(data)

    start = time.monotonic()
    run()
    return count[0], time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20000, help="examples per property (default 20000)")
    parser.add_argument("--only", action="append", choices=sorted(PROPERTIES), help="run only this property")
    args = parser.parse_args()
    total = 0
    for name in args.only or sorted(PROPERTIES):
        ran, seconds = run_property(name, args.examples)
        total += ran
        print(f"{name:14} {ran:8d} examples in {seconds:7.1f} s: only patchq errors escaped", flush=True)
    print(f"total          {total:8d} examples", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
