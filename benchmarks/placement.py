"""Placement benchmark: smc.backend's engine against uhashring, same inputs, one run.

    .venv/bin/python benchmarks/placement.py                 # 1,000,000 projects, 1,000 hosts, 3 DCs
    .venv/bin/python benchmarks/placement.py --projects 100000 --hosts 300

Prints, for ``--projects`` projects on ``--hosts`` hosts in ``--dcs`` DCs with 2 replicas a DC:
throughput (and the ratio to uhashring), replica-slot load max/mean per DC, the slots moved
when one host is added and when one is removed against the ideal share (and outside the DC),
and the memory peak of the engine's run.

uhashring (one ``HashRing`` a DC, its default 160 vnodes, ``range(key, size=2)``) is timed on
``--sample`` projects and its rate extrapolated (it needs minutes for 1M); its balance and moves
are computed on all projects with a lookup that reads uhashring's own ring and is checked to
give the same answer as ``range()`` on the sample.
"""
import argparse
import os
import sys
import time
import tracemalloc
import uuid
from bisect import bisect
from hashlib import md5

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".collections"))

from ansible_collections.smc.backend.plugins.module_utils import placement as engine  # noqa: E402

REPLICAS = 2


def make_hosts(count, dcs):
    names = ["dc%d" % d for d in range(dcs)]
    return [{"name": "st-%s-%04d" % (names[i % dcs], i), "dc": names[i % dcs]} for i in range(count)]


def make_projects(count):
    return [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15 + 12345) % (1 << 128), version=4)) for i in range(count)]


def slot_loads(placement, hosts):
    load = dict((h["name"], 0) for h in hosts)
    for chosen in placement.values():
        for name in chosen:
            load[name] = load.get(name, 0) + 1
    return load


def max_over_mean(load, hosts):
    out = {}
    for dc in sorted(set(h["dc"] for h in hosts)):
        values = [load[h["name"]] for h in hosts if h["dc"] == dc]
        out[dc] = max(values) / (sum(values) / float(len(values)))
    return out


def moved_slots(before, after, dc_of, dc):
    inside = outside = 0
    for pid, old in before.items():
        new = after[pid]
        if old == new:
            continue
        for name in set(old) ^ set(new):
            if dc_of.get(name) == dc:
                inside += 1
            else:
                outside += 1
    return inside // 2, outside // 2  # a move is one host out and one in


class UhashRing(object):
    """One uhashring ring per DC; ``lookup`` reads the ring exactly like ``HashRing.range``."""

    def __init__(self, hosts):
        from uhashring import HashRing
        self.dcs = sorted(set(h["dc"] for h in hosts))
        self.rings = dict((dc, HashRing(nodes=[h["name"] for h in hosts if h["dc"] == dc])) for dc in self.dcs)

    def place_api(self, projects):
        return dict((p, tuple(n["nodename"] for dc in self.dcs for n in self.rings[dc].range(p, size=REPLICAS)))
                    for p in projects)

    def place_fast(self, projects):
        rings = [(r.runtime._keys, r.runtime._ring) for r in (self.rings[dc] for dc in self.dcs)]
        out = {}
        for p in projects:
            h = int(md5(p.encode("utf-8")).hexdigest(), 16)
            chosen = []
            for keys, ring in rings:
                pos = bisect(keys, h)
                got = []
                n = len(keys)
                while len(got) < REPLICAS:
                    name = ring[keys[pos % n]]
                    if name not in got:
                        got.append(name)
                    pos += 1
                chosen.extend(got)
            out[p] = tuple(chosen)
        return out


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--projects", type=int, default=1000000)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--dcs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20000, help="projects timed with uhashring's range()")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    args = parser.parse_args()

    hosts = make_hosts(args.hosts, args.dcs)
    dc_of = dict((h["name"], h["dc"]) for h in hosts)
    projects = make_projects(args.projects)
    print("placement benchmark: %d projects, %d hosts in %d DCs, %d replicas per DC, python %s"
          % (args.projects, args.hosts, args.dcs, REPLICAS, sys.version.split()[0]))
    print("engine: ring of %d points per unit weight per host, %d-bucket grid per DC"
          % (engine.VNODES_PER_WEIGHT, 1 << engine.GRID_BITS))

    # throughput ------------------------------------------------------------------------------
    ours, ours_s = timed(engine.place, hosts, projects)
    ours_rate = args.projects / ours_s
    uh = UhashRing(hosts)
    sample = projects[:min(args.sample, args.projects)]
    uh_sample, uh_s = timed(uh.place_api, sample)
    uh_rate = len(sample) / uh_s
    print("\n== throughput")
    print("engine     %8.2f s   %10.0f projects/s" % (ours_s, ours_rate))
    print("uhashring  %8.2f s   %10.0f projects/s   (timed on %d projects, %.0f s extrapolated to %d)"
          % (uh_s, uh_rate, len(sample), args.projects / uh_rate, args.projects))
    print("ratio      %8.1fx  (target >= 75x)" % (ours_rate / uh_rate))

    # balance ---------------------------------------------------------------------------------
    uh_all, uh_fast_s = timed(uh.place_fast, projects)
    assert all(uh_all[p] == uh_sample[p] for p in sample), "fast uhashring lookup differs from range()"
    ours_bal = max_over_mean(slot_loads(ours, hosts), hosts)
    uh_bal = max_over_mean(slot_loads(uh_all, hosts), hosts)
    mean_slots = REPLICAS * args.projects / (args.hosts / float(args.dcs))
    noise = 1.0 / mean_slots ** 0.5
    print("\n== replica-slot load max/mean per DC (target <= 1.05)")
    for dc in sorted(ours_bal):
        print("%-6s engine %.4f   uhashring %.4f" % (dc, ours_bal[dc], uh_bal[dc]))
    print("       (random hashing of %d projects alone: about %.0f slots a host, sd %.2f%%)"
          % (args.projects, mean_slots, 100 * noise))

    # moves -----------------------------------------------------------------------------------
    print("\n== slots moved, one host added / removed in dc0 (target <= 1.05x ideal, 0 outside)")
    dc0 = [h for h in hosts if h["dc"] == "dc0"]
    slots_dc0 = REPLICAS * args.projects
    new_host = {"name": "st-dc0-new", "dc": "dc0"}
    victim = dc0[len(dc0) // 2]["name"]
    dc_of[new_host["name"]] = "dc0"
    cases = [
        ("add", hosts + [new_host], slots_dc0 / float(len(dc0) + 1)),
        ("remove", [h for h in hosts if h["name"] != victim], slots_dc0 / float(len(dc0))),
    ]
    for label, changed, ideal in cases:
        after = timed(engine.place, changed, projects)[0]
        inside, outside = moved_slots(ours, after, dc_of, "dc0")
        uh_after = UhashRing(changed).place_fast(projects)
        uh_inside, uh_outside = moved_slots(uh_all, uh_after, dc_of, "dc0")
        print("%-6s ideal %8.0f   engine %8d (%.3fx, outside %d)   uhashring %8d (%.3fx, outside %d)"
              % (label, ideal, inside, inside / ideal, outside, uh_inside, uh_inside / ideal, uh_outside))
        del after, uh_after

    # memory ----------------------------------------------------------------------------------
    if not args.no_memory:
        del ours, uh_all
        tracemalloc.start()
        result = engine.place(hosts, projects)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del result
        print("\n== memory")
        print("engine place() peak %.0f MiB (tracemalloc; the result dict and its tuples included)"
              % (peak / 1048576.0))
    try:
        import resource
        print("process max RSS %.0f MiB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    except ImportError:  # pragma: no cover
        pass


if __name__ == "__main__":
    main()
