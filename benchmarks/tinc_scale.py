"""Scale check of the tinc mesh (simulation, no VMs): 1,000 hosts in 10 DCs.

Plans the mesh with ``plugins/module_utils/tinc_topology.py`` and renders the role's own templates
(``roles/tinc/templates``) with Jinja2 as the role does: ``shared_files.json.j2`` once (every
member's public host file and the manifest, the same on every host) and ``node_files.json.j2`` for
every host (tinc.conf, tinc-up, tinc-down). Prints the times, the largest ConnectTo list, degrees, and the
diameter of the meta-connection graph, whole and with each hub down in turn.

    python benchmarks/tinc_scale.py [--hosts 1000] [--dcs 10] [--k 3] [--hubs-per-dc 2]
"""
import argparse
import json
import os
import statistics
import sys
import time

import jinja2
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
if not os.path.exists(os.path.join(ROOT, ".collections", "ansible_collections", "smc", "backend")):
    os.makedirs(os.path.join(ROOT, ".collections", "ansible_collections", "smc"), exist_ok=True)
    os.symlink("../../..", os.path.join(ROOT, ".collections", "ansible_collections", "smc", "backend"))

from ansible_collections.smc.backend.plugins.module_utils import tinc_topology as tt  # noqa: E402

ROLE = os.path.join(ROOT, "roles", "tinc")
# A stand-in public key the size of a 4096-bit one (tinc host files carry the PEM text).
FAKE_KEY = "-----BEGIN RSA PUBLIC KEY-----\n" + ("A" * 64 + "\n") * 11 + "AAAA\n-----END RSA PUBLIC KEY-----\n"


def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True)
    env.filters["bool"] = bool
    env.filters["to_json"] = json.dumps
    return env


def _defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    return {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--dcs", type=int, default=10)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--hubs-per-dc", type=int, default=2)
    args = parser.parse_args()

    per_dc = args.hosts // args.dcs
    nodes = [{"name": f"dc{d}-s{i}", "dc": f"dc{d}", "address": f"10.{d}.{i // 250}.{i % 250 + 1}"}
             for d in range(1, args.dcs + 1) for i in range(1, per_dc + 1)]

    t0 = time.perf_counter()
    mesh = tt.plan(nodes, "10.88.0.0/16", k=args.k, hubs_per_dc=args.hubs_per_dc)
    t_plan = time.perf_counter() - t0

    env = _env()
    context = dict(_defaults(), tinc_max_connect=args.k, __tinc_plan=mesh,
                   hostvars={n["name"]: {"__tinc_key": {"stdout": FAKE_KEY}} for n in nodes})
    t0 = time.perf_counter()
    host_files = json.loads(env.get_template("shared_files.json.j2").render(context))
    t_hosts = time.perf_counter() - t0
    node_template = env.get_template("node_files.json.j2")
    rendered = len(host_files)
    size = 0
    for name in mesh["nodes"]:
        files = json.loads(node_template.render(context, inventory_hostname=name))
        rendered += len(files)
        size = max(size, sum(map(len, files.values())) + sum(map(len, host_files.values())))
    t_render = time.perf_counter() - t0

    links = tt.connect_to(nodes, mesh["hubs"], k=args.k)
    out_degree = [len(v) for v in links.values()]
    adj = tt.graph(links)
    degree = [len(v) for v in adj.values()]
    t0 = time.perf_counter()
    diam = tt.diameter(adj)
    t_diam = time.perf_counter() - t0
    down = {hub: tt.diameter(tt.graph(links, down=[hub])) for hub in mesh["hubs"]}
    worst_hub = max(down, key=lambda h: float("inf") if down[h] is None else down[h])

    print(f"hosts                         {len(nodes)} in {args.dcs} DCs, k={args.k}, "
          f"{args.hubs_per_dc} hubs per DC ({len(mesh['hubs'])} hubs)")
    print(f"plan (validate+alloc+links)   {t_plan * 1000:.0f} ms")
    print(f"render role templates         {t_render * 1000:.0f} ms ({rendered} files; the shared ones "
          f"{t_hosts * 1000:.0f} ms; {size / 1024:.0f} KiB per host)")
    print(f"ConnectTo per host            max {max(out_degree)}, min {min(out_degree)}, "
          f"avg {statistics.mean(out_degree):.2f}")
    print(f"meta-connections per host     min {min(degree)}, avg {statistics.mean(degree):.2f}, max {max(degree)} (a hub)")
    print(f"diameter                      {diam} hops ({t_diam:.1f} s for {len(adj)} BFS)")
    print(f"diameter with one hub down    worst {down[worst_hub]} hops (stopping {worst_hub}); "
          f"connected without any single hub: {all(v is not None for v in down.values())}")


if __name__ == "__main__":
    main()
