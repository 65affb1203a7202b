#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print a guest's test results as `PASS|FAIL|SKIP guest: name` lines.

usage: igt-results.py RESULTS_DIR TESTLIST
RESULTS_DIR holds igt_runner's results.json (x86-64 guests) or
scripts/guest-runner.sh's results.tsv and NAME.out files (arm64 guests).
Every test of TESTLIST must have a result; one without is a FAIL.
"""
import json
import os
import re
import sys


def load(results_dir):
    """The results as igt_runner's results.json has them: name -> dict."""
    path = os.path.join(results_dir, "results.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["tests"]
    res = {}
    with open(os.path.join(results_dir, "results.tsv")) as f:
        for line in f:
            name, result, _secs = line.rstrip("\n").split("\t")
            try:
                with open(os.path.join(results_dir, name + ".out"), errors="replace") as o:
                    out = o.read()
            except OSError:
                out = ""
            res[name] = {"result": result, "out": out, "err": ""}
    return res


def reason(r):
    text = (r.get("out", "") + "\n" + r.get("err", "")).splitlines()
    for pat in ("Test requirement not met", "requirement", "(", "error"):
        for line in text:
            if pat in line and not line.startswith(("IGT-Version", "Starting subtest", "Subtest ")):
                return line.strip()[:200]
    return ""


def main():
    res = load(sys.argv[1])
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
