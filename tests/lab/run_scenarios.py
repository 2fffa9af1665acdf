"""Run molecule scenarios in order within a time budget, and say which ran, how long each took, and which did not fit.

    python tests/lab/run_scenarios.py SCENARIO...

Each scenario states its CI minutes in its molecule.yml (a line ``# CI minutes: about N``), measured on a lab
of ordinary speed. The first scenario (``default``, which converges the lab the others start from) always runs;
its measured time against its stated minutes gives this machine's speed, and every later scenario's stated
minutes times that speed is its forecast. With a budget (SMC_TEST_BUDGET_MIN minutes counted from
SMC_TEST_START, epoch seconds: ``make test`` sets both), a scenario whose forecast does not fit in what is left
is not run: it is listed as such, with the numbers, in the summary. Without a budget every scenario runs.
Exit status: 1 when a scenario failed (the scenarios after it do not run), else 0.
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATED = re.compile(r"^# CI minutes: about (\d+(?:\.\d+)?)", re.M)


def stated_minutes(scenario):
    path = os.path.join(ROOT, "molecule", scenario, "molecule.yml")
    with open(path, encoding="utf-8") as f:
        found = STATED.search(f.read())
    if not found:
        raise SystemExit("%s has no '# CI minutes: about N' line: state the scenario's CI minutes there" % path)
    return float(found.group(1))


def budget_left(now):
    budget, start = os.environ.get("SMC_TEST_BUDGET_MIN"), os.environ.get("SMC_TEST_START")
    if not budget or not start:
        return None
    return float(budget) - (now - float(start)) / 60.0


def run(scenario):
    started = time.monotonic()
    rc = subprocess.run(["molecule", "test", "-s", scenario], check=False).returncode
    return rc, (time.monotonic() - started) / 60.0


def main(argv=None):
    scenarios = list(sys.argv[1:] if argv is None else argv)
    stated = dict((s, stated_minutes(s)) for s in scenarios)
    speed, rows, failed = 1.0, [], None
    for i, scenario in enumerate(scenarios):
        forecast = stated[scenario] * speed
        left = budget_left(time.time())
        if i > 0 and left is not None and forecast > left:
            print("== molecule scenario %s NOT RUN: forecast %.0f min (stated %.0f x speed %.2f), %.0f min of the "
                  "budget left" % (scenario, forecast, stated[scenario], speed, left), flush=True)
            rows.append((scenario, stated[scenario], forecast, None, "not run (budget)"))
            continue
        print("== molecule scenario %s (stated %.0f CI min, forecast %.0f)" % (scenario, stated[scenario], forecast),
              flush=True)
        rc, took = run(scenario)
        rows.append((scenario, stated[scenario], forecast, took, "passed" if rc == 0 else "FAILED (rc %d)" % rc))
        if i == 0:
            speed = max(1.0, took / stated[scenario])
        if rc != 0:
            failed = scenario
            break
    print("\n== scenarios (speed %.2f: the first scenario's minutes over its stated minutes)" % speed)
    print("%-12s %7s %9s %7s  %s" % ("scenario", "stated", "forecast", "took", "result"))
    for scenario, st, fc, took, result in rows:
        print("%-12s %7.0f %9.0f %7s  %s" % (scenario, st, fc, "-" if took is None else "%.1f" % took, result))
    for scenario in scenarios[len(rows):]:
        print("%-12s %7.0f %9s %7s  not run (after %s failed)" % (scenario, stated[scenario], "-", "-", failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
