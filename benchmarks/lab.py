"""How fast the lab converges, re-runs and resets, against plain Ansible measured in the same run.

    python benchmarks/lab.py [--runs converge,idempotent,reset,linear] [--ci] [--fresh] [--records DIR]

Needs the lab up with its 'blank' snapshot (`make lab-up` on fresh VMs saves it). Run it through make so the
lab's environment applies (`make bench` or `.venv/bin/python benchmarks/lab.py` after `make deps`). In order:

1. restore 'blank', then `site.yml` from blank VMs (the configured strategy: Mitogen unless SMC_MITOGEN=0);
2. `site.yml` again: the idempotent re-run, whose recap must show changed=0 on every host;
3. the same re-run with Ansible's own linear strategy (the peer: what the lab cost without Mitogen);
4. save 'converged', then restore it: the reset that replaces reboot + converge.

`--ci` also times `CI=true bash .ci/run` on a fresh clone of HEAD (image cached: that clone's lab is booted
anew), and `--fresh` times `make lab` in a fresh clone with an empty image cache (apt packages already there).
Per-task records of each playbook run go to DIR (tests/lab/task_times.py summarizes them).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TARGETS = {"converge": 8 * 60, "idempotent": 2 * 60, "reset": 90, "ci": 35 * 60, "fresh": 20 * 60}
BEFORE = {"converge": "24 min (CI), 41 min (fresh machine)", "idempotent": "14.5 min",
          "reset": "(reboot + converge)", "ci": "66-76 min", "fresh": "92 min, one failure"}


def lab_env(**extra):
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".collections"))
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def timed(cmd, env, cwd=ROOT, log=None):
    """Run cmd, return (seconds, stdout); fail loudly with the output's tail when it fails."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if log:
        with open(log, "w", encoding="utf-8") as handle:
            handle.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise SystemExit("%s failed after %.0f s:\n%s" % (" ".join(cmd), took, tail))
    return took, proc.stdout


def recap(stdout):
    """host -> changed count from a play recap."""
    return {m.group(1): int(m.group(3)) for m in RECAP.finditer(stdout)}


def site(env, records, label):
    env = dict(env, SMC_TASK_TIMES=os.path.join(records, label + ".jsonl")) if records else env
    took, out = timed(["ansible-playbook", "playbooks/site.yml"], env,
                      log=os.path.join(records, label + ".log") if records else None)
    return took, recap(out)


def snapshot(action, name):
    return timed([sys.executable, "tests/lab/snapshot.py", action, name], lab_env())


def clone_and_time(cmd, extra_env):
    with tempfile.TemporaryDirectory(prefix="smc-bench-") as tmp:
        subprocess.run(["git", "clone", "-q", ROOT, tmp], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SMC_"))}
        env.update(extra_env)
        took = timed(cmd, env, cwd=tmp)[0]
    return took


def row(name, seconds, note=""):
    target = TARGETS.get(name)
    verdict = "" if seconds is None else ("met" if seconds <= target else "MISSED")
    shown = "not run" if seconds is None else "%.1f min (%.0f s)" % (seconds / 60, seconds)
    return "| %-10s | %-36s | %-18s | <= %-6s | %-6s | %s" % (
        name, BEFORE.get(name, ""), shown, "%d s" % target if target < 300 else "%d min" % (target // 60),
        verdict, note)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="converge,idempotent,linear,reset")
    parser.add_argument("--ci", action="store_true")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--records", default=os.path.join(ROOT, "build", "lab-bench"))
    args = parser.parse_args(argv)
    runs = set(args.runs.split(","))
    os.makedirs(args.records, exist_ok=True)
    env, got, notes = lab_env(), {}, {}
    strategy = env.get("ANSIBLE_STRATEGY", "linear")
    if "converge" in runs:
        got["restore blank"] = snapshot("restore", "blank")[0]
        got["converge"], changed = site(env, args.records, "converge")
        notes["converge"] = "%s; changed %s" % (strategy, sum(changed.values()))
    if "idempotent" in runs:
        got["idempotent"], changed = site(env, args.records, "idempotent")
        notes["idempotent"] = "%s; changed=%s on %d hosts" % (strategy, sum(changed.values()), len(changed))
        if any(changed.values()):
            notes["idempotent"] += " NOT IDEMPOTENT"
    if "linear" in runs:
        linear, changed = site(lab_env(ANSIBLE_STRATEGY="linear"), args.records, "idempotent-linear")
        notes["linear"] = "peer: Ansible's linear strategy, changed=%s" % sum(changed.values())
        got["linear"] = linear
    if "reset" in runs:
        got["save"] = snapshot("save", "converged")[0]
        got["reset"], out = snapshot("restore", "converged")
        notes["reset"] = out.strip()
    if args.ci:
        got["ci"] = clone_and_time(["bash", ".ci/run"], {"CI": "true"})
    if args.fresh:
        cache = tempfile.mkdtemp(prefix="smc-lab-fresh-")
        got["fresh"] = clone_and_time(["make", "lab"], {"SMC_LAB_CACHE": cache})
    print("| measure    | before                               | now                | target    | result | notes")
    print("|---|---|---|---|---|---|")
    for name in ("converge", "idempotent", "reset", "ci", "fresh"):
        print(row(name, got.get(name), notes.get(name, "")))
    if "linear" in got and "idempotent" in got:
        print("idempotent re-run: linear %.0f s / %s %.0f s = %.1fx" % (
            got["linear"], strategy, got["idempotent"], got["linear"] / got["idempotent"]))
    for extra in ("restore blank", "save"):
        if extra in got:
            print("%s: %.1f s" % (extra, got[extra]))
    print("per-task records: %s (python tests/lab/task_times.py FILE --top 20)" % args.records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
