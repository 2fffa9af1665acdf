"""HA read benchmark: what one host's HA loop reads of etcd after a change, this host's keys only
(``smc_ha.Loop.read_mine``: every lease, the primary and candidates of its own projects, in transactions of
128 reads at one revision) against the whole prefix (the loop's read before 2026-12-07), same etcd, one run.

    .venv/bin/python benchmarks/ha_read.py                          # 100,000 projects, 1,000 hosts, 6 copies
    .venv/bin/python benchmarks/ha_read.py --projects 20000 --hosts 200

A real etcd (Debian's etcd-server, as `make deps` installs it) on 127.0.0.1 holds one primary key per project
(the value the HA loop writes) and one lease key per host; a host holds copies of projects x copies / hosts of
them. Prints both reads' wall time (best of --repeat), keys and bytes returned, and the ratio.
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, ".collections"), os.path.join(ROOT, "tests")]

from etcd_local import LocalEtcd  # noqa: E402  pylint: disable=import-error
from ansible_collections.smc.backend.plugins.module_utils import etcd_v3, failover  # noqa: E402

PREFIX = "/smc/"


def best(fn, repeat):
    times, result = [], None
    for _attempt in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--projects", type=int, default=100000)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    k = failover.keys(PREFIX)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalEtcd(os.path.join(tmp, "data"))
        server.extra = ["--quota-backend-bytes", str(4 * 1024 ** 3)]
        server.start()
        try:
            client = etcd_v3.Client([server.url], timeout=60.0)
            started = time.perf_counter()
            client.put_many([(k["hosts"] + "h%04d" % h, json.dumps({"since": 1})) for h in range(args.hosts)])
            pids = ["%08x-0000-4000-8000-%012x" % (i, i) for i in range(args.projects)]
            for start in range(0, len(pids), 5000):
                client.put_many([(k["primary"] + pid, json.dumps({"host": "h%04d" % (i % args.hosts), "epoch": 3,
                                                                  "lease": 7587869461739453000}))
                                 for i, pid in enumerate(pids[start:start + 5000], start)])
            loaded = time.perf_counter() - started
            mine = pids[::max(1, args.hosts // args.copies)]  # this host's share: projects x copies / hosts
            full_s, (full, _rev) = best(lambda: client.range(PREFIX), args.repeat)
            mine_s, (got, _rev) = best(lambda: client.range_many(
                prefixes=[k["hosts"], k["dead"], k["window"]] + [k["candidates"] + p + "/" for p in mine],
                keys=[k["primary"] + p for p in mine]), args.repeat)
            assert len(got) == len(mine) + args.hosts, (len(got), len(mine))

            def size(kvs):
                return sum(len(key) + len(v[0]) for key, v in kvs.items())
            print("etcd with %d projects and %d hosts (loaded in %.1f s); one host holds %d of them"
                  % (args.projects, args.hosts, loaded, len(mine)))
            print("%-34s %10s %10s %12s" % ("read after a change", "seconds", "keys", "bytes"))
            print("%-34s %10.3f %10d %12d" % ("whole prefix (before)", full_s, len(full), size(full)))
            print("%-34s %10.3f %10d %12d" % ("this host's keys (read_mine)", mine_s, len(got), size(got)))
            print("ratio: this host's keys %.1fx faster, %.0fx fewer bytes" % (full_s / mine_s, size(full) / size(got)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
