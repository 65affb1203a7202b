#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print KUnit results (KTAP files, one per suite) as `PASS|FAIL|SKIP kunit: suite.case`.

usage: kunit-results.py DIR
"""
import pathlib
import re
import sys

CASE = re.compile(r"^\s+(not )?ok \d+ (\S+)(?:\s+#\s*SKIP\s*(.*))?$")
SUITE = re.compile(r"^(not )?ok \d+ (\S+)")


def main():
    files = sorted(pathlib.Path(sys.argv[1]).glob("*.ktap"))
    if not files:
        print("FAIL kunit: no KUnit results were collected")
    for f in files:
        suite = f.stem
        cases = 0
        suite_ok = None
        for line in f.read_text(errors="replace").splitlines():
            m = CASE.match(line)
            if m:
                cases += 1
                name = f"kunit: {suite}.{m.group(2)}"
                if m.group(3) is not None:
                    print(f"SKIP {name} ({m.group(3).strip() or 'skipped'})")
                elif m.group(1):
                    print(f"FAIL {name}")
                else:
                    print(f"PASS {name}")
                continue
            m = SUITE.match(line)
            if m:
                suite_ok = not m.group(1)
        if cases == 0:
            verdict = "PASS" if suite_ok else "FAIL"
            print(f"{verdict} kunit: {suite} (suite without cases)")


if __name__ == "__main__":
    main()
