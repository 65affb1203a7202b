#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print igt_runner's results.json as `PASS|FAIL|SKIP guest: name` lines.

usage: igt-results.py RESULTS_JSON TESTLIST
Every test of TESTLIST must have a result; one without is a FAIL.
"""
import json
import re
import sys


def reason(r):
    text = (r.get("out", "") + "\n" + r.get("err", "")).splitlines()
    for pat in ("Test requirement not met", "requirement", "(", "error"):
        for line in text:
            if pat in line and not line.startswith(("IGT-Version", "Starting subtest", "Subtest ")):
                return line.strip()[:200]
    return ""


def main():
    with open(sys.argv[1]) as f:
        res = json.load(f)["tests"]
    want = [l.strip() for l in open(sys.argv[2]) if l.strip()]
    for name in want:
        r = res.get(name)
        short = re.sub(r"^igt@", "", name)
        if r is None:
            print(f"FAIL guest: {short} (no result: the test did not run)")
            continue
        result = r["result"]
        if result == "pass":
            print(f"PASS guest: {short}")
        elif result == "skip":
            print(f"SKIP guest: {short} ({reason(r) or 'skipped'})")
        else:
            why = reason(r)
            if result.startswith("dmesg"):
                kern = [l for l in r.get("dmesg", "").splitlines() if "<4>" in l or "<3>" in l]
                why = (kern[0] if kern else why)[:200]
            print(f"FAIL guest: {short} ({result}{': ' + why if why else ''})")


if __name__ == "__main__":
    main()
