"""Benchmark: the smc.backend.gce inventory over 5,000 instances in 40 zones (local endpoint).

    .venv/bin/python benchmarks/gce_inventory.py [--instances 5000] [--zones 40] [--page 500]

Runs the inventory plugin (real google-cloud-compute client, REST, 127.0.0.1) and prints wall
time and API calls; then lists the same instances one zone at a time (zones.list + instances.list
per zone) and prints that call count too, measured, not computed.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".collections"), os.path.join(ROOT, "tests")]

from ansible.inventory.data import InventoryData  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.template import Templar  # noqa: E402

from ansible_collections.smc.backend.plugins.inventory.gce import InventoryModule  # noqa: E402
from gce_endpoint import FakeGce  # noqa: E402
from gce_endpoint.server import zone_names  # noqa: E402

TOKEN = "bench-token"


def plugin_for(url, page):
    plugin = InventoryModule()
    plugin.inventory = InventoryData()
    plugin.templar = Templar(loader=DataLoader())
    options = {"projects": ["bench"], "auth_kind": "accesstoken", "access_token": TOKEN, "api_endpoint": url,
               "filters": [], "zones": [], "statuses": ["RUNNING"], "hostnames": ["name"],
               "ansible_host": ["private_ip"], "dc_label": "dc", "zone_dc_map": {}, "dc_group_prefix": "dc_",
               "max_results": page, "request_timeout": 60.0, "retries": 5, "strict": False, "compose": {},
               "groups": {}, "keyed_groups": [], "service_account_file": None, "service_account_contents": None}
    plugin.get_option = options.get
    return plugin


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--zones", type=int, default=40)
    parser.add_argument("--page", type=int, default=500)
    args = parser.parse_args()

    with FakeGce(zones=zone_names(args.zones), token=TOKEN) as gce:
        started = time.perf_counter()
        for i in range(args.instances):
            zone = gce.state.zones[i % args.zones]
            gce.state.seed("bench", zone, f"st-{i:05d}", labels={"dc": f"dc{i % 3}", "role": "storage"},
                           status="RUNNING" if i % 50 else "TERMINATED")
        print(f"endpoint: {args.instances} instances in {args.zones} zones, seeded in "
              f"{time.perf_counter() - started:.1f}s, page size {args.page}")

        plugin = plugin_for(gce.url, args.page)
        client = plugin._create_client()
        client.client("InstancesClient")  # build the client outside the timing
        gce.state.reset_stats()
        started = time.perf_counter()
        records = plugin._populate(client)
        wall = time.perf_counter() - started
        agg_calls = gce.state.stats()["requests"]
        hosts = len(plugin.inventory.groups["gce"].get_hosts())
        dcs = sorted(g for g in plugin.inventory.groups if g.startswith("dc_"))
        print(f"inventory (aggregatedList): {wall:.2f}s wall, {agg_calls} API calls, {len(records)} instances "
              f"listed, {hosts} RUNNING hosts in {len(dcs)} dc groups")

        gce.state.reset_stats()
        started = time.perf_counter()
        count = sum(1 for zone in client.zones(project="bench")
                    for dummy in client.zone_instances(zone, max_results=args.page, project="bench"))
        per_zone_wall = time.perf_counter() - started
        per_zone_calls = gce.state.stats()["requests"]
        print(f"per-zone listing (zones.list + instances.list per zone): {per_zone_wall:.2f}s wall, "
              f"{per_zone_calls} API calls, {count} instances listed")
        print(f"calls: aggregated {agg_calls} vs per-zone {per_zone_calls} "
              f"({per_zone_calls / max(agg_calls, 1):.1f}x)")


if __name__ == "__main__":
    main()
