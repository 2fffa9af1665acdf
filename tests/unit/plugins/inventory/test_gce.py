"""smc.backend.gce inventory: a fake client (canned JSON) and the local GCE endpoint."""
import json

import pytest
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
import yaml
from ansible import constants as C
from ansible.plugins.loader import fragment_loader
from ansible.utils.plugin_docs import add_fragments
from ansible.template import Templar, trust_as_template
from google.cloud import compute_v1

from ansible_collections.smc.backend.plugins.inventory import gce as gce_inventory
from ansible_collections.smc.backend.plugins.inventory.gce import InventoryModule, dc_of, host_record
from ansible_collections.smc.backend.plugins.module_utils.gce import GceBackend, GceError
from gce_endpoint.testing import TOKEN, gce  # noqa: F401 # pylint: disable=unused-import

CANNED = {  # zone -> instances, as the API's JSON
    "europe-west1-b": [
        {"name": "st-ew1-01", "id": "11", "status": "RUNNING", "labels": {"dc": "ew1", "role": "storage"},
         "machineType": "https://x/zones/europe-west1-b/machineTypes/n2-standard-8",
         "networkInterfaces": [{"networkIP": "10.1.0.2", "accessConfigs": [{"natIP": "34.1.1.1"}]}]},
        {"name": "st-ew1-02", "id": "12", "status": "STOPPING", "labels": {"dc": "ew1", "role": "storage"},
         "networkInterfaces": [{"networkIP": "10.1.0.3"}]},
    ],
    "us-central1-a": [
        {"name": "st-usc-01", "id": "21", "status": "RUNNING", "labels": {"role": "storage"},
         "networkInterfaces": [{"networkIP": "10.2.0.2"}]},
        {"name": "st-usc-02", "id": "22", "status": "SUSPENDED", "labels": {},
         "networkInterfaces": [{"networkIP": "10.2.0.3"}]},
        {"name": "st-usc-03", "id": "23", "status": "TERMINATED", "labels": {"dc": "usc"},
         "networkInterfaces": [{}]},
    ],
}


class FakeClient:
    """Replays CANNED like GceBackend.aggregated_instances (one call per project)."""

    def __init__(self):
        self.calls = []

    def aggregated_instances(self, filter_expr=None, max_results=500, project=None):
        self.calls.append((project, filter_expr, max_results))
        for zone, rows in CANNED.items():
            for row in rows:
                yield zone, compute_v1.Instance.from_json(json.dumps(row))


def trusted(value):
    """Config read from a YAML file is trusted for templating; mimic that for dict-fed options."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def make_plugin(options):
    plugin = InventoryModule()
    plugin.inventory = InventoryData()
    plugin.templar = Templar(loader=DataLoader())
    defaults = {"projects": ["p"], "filters": [], "zones": [], "statuses": ["RUNNING"], "hostnames": ["name"],
                "ansible_host": ["public_ip", "private_ip"], "dc_label": "dc", "zone_dc_map": {},
                "dc_group_prefix": "dc_", "max_results": 500, "strict": False, "compose": {}, "groups": {},
                "keyed_groups": [], "leading_separator": True, "use_extra_vars": False, "cache": False}
    defaults.update(trusted(options))
    plugin.get_option = defaults.get
    return plugin


def groups(plugin):
    return {name: sorted(h.name for h in g.get_hosts()) for name, g in plugin.inventory.groups.items()
            if g.get_hosts()}


def hostvars(plugin, host):
    return plugin.inventory.get_host(host).get_vars()


# ---- fake client
def test_running_hosts_in_dc_groups():
    plugin = make_plugin({"zone_dc_map": {"us-central1": "usc"}})
    client = FakeClient()
    plugin._populate(client)
    assert client.calls == [("p", None, 500)]
    assert groups(plugin)["gce"] == ["st-ew1-01", "st-usc-01"]
    assert groups(plugin)["dc_ew1"] == ["st-ew1-01"] and groups(plugin)["dc_usc"] == ["st-usc-01"]
    hv = hostvars(plugin, "st-ew1-01")
    assert hv["dc"] == "ew1" and hv["ansible_host"] == "34.1.1.1"
    assert hv["gce_zone"] == "europe-west1-b" and hv["gce_region"] == "europe-west1"
    assert hv["gce_machine_type"] == "n2-standard-8" and hv["gce_private_ip"] == "10.1.0.2"
    assert hv["gce_labels"] == {"dc": "ew1", "role": "storage"} and hv["gce_status"] == "RUNNING"
    assert hostvars(plugin, "st-usc-01")["ansible_host"] == "10.2.0.2"


def test_every_status_can_be_chosen():
    plugin = make_plugin({"statuses": [], "keyed_groups": [{"key": "gce_status | lower", "prefix": "status"}]})
    plugin._populate(FakeClient())
    g = groups(plugin)
    assert len(g["gce"]) == 5
    assert g["status_stopping"] == ["st-ew1-02"] and g["status_suspended"] == ["st-usc-02"]
    assert g["status_terminated"] == ["st-usc-03"]
    assert "ansible_host" not in hostvars(plugin, "st-usc-03")  # no address at all
    plugin = make_plugin({"statuses": ["RUNNING", "STOPPING"]})
    plugin._populate(FakeClient())
    assert groups(plugin)["gce"] == ["st-ew1-01", "st-ew1-02", "st-usc-01"]


def test_dc_fallback_is_zone_then_region_mapping_then_region():
    rec = {"labels": {}, "zone": "us-central1-a", "region": "us-central1"}
    assert dc_of(rec) == "us-central1"
    assert dc_of(rec, zone_dc_map={"us-central1": "usc"}) == "usc"
    assert dc_of(rec, zone_dc_map={"us-central1": "usc", "us-central1-a": "usc-a"}) == "usc-a"
    assert dc_of(dict(rec, labels={"site": "x"}), dc_label="site") == "x"
    plugin = make_plugin({})
    plugin._populate(FakeClient())
    assert groups(plugin)["dc_us_central1"] == ["st-usc-01"]  # sanitized group name


def test_hostnames_zones_compose_and_groups():
    plugin = make_plugin({"hostnames": ["public_ip", "private_ip"], "zones": ["europe-west1-b"],
                          "compose": {"weight": "gce_labels.weight | default(1) | int"},
                          "groups": {"storage": "gce_labels.role == 'storage'"},
                          "keyed_groups": [{"key": "gce_labels.role", "prefix": "role"}]})
    plugin._populate(FakeClient())
    g = groups(plugin)
    assert g["gce"] == ["34.1.1.1"] and g["storage"] == ["34.1.1.1"] and g["role_storage"] == ["34.1.1.1"]
    assert hostvars(plugin, "34.1.1.1")["weight"] == 1


def test_duplicate_names_in_two_zones_are_kept_apart():
    record = host_record("p", "us-central1-a", {"name": "dup", "status": "RUNNING"})
    plugin = make_plugin({})
    plugin._add_hosts([record, dict(record, zone="us-central1-b", region="us-central1")])
    assert groups(plugin)["gce"] == ["dup", "dup.us-central1-b"]


def test_filters_are_anded_into_one_request():
    plugin = make_plugin({"filters": ["labels.role = storage", "name = st-*"], "projects": ["a", "b"]})
    client = FakeClient()
    plugin._populate(client)
    assert client.calls == [("a", "(labels.role = storage) AND (name = st-*)", 500),
                            ("b", "(labels.role = storage) AND (name = st-*)", 500)]


def test_verify_file(tmp_path):
    plugin = InventoryModule()
    for name, ok in (("prod.gce.yml", True), ("prod.gce.yaml", True), ("prod.yml", False), ("gce.json", False)):
        path = tmp_path / name
        path.write_text("plugin: smc.backend.gce\n")
        assert plugin.verify_file(str(path)) is ok


# ---- the local endpoint, through parse() with a real config file and the inventory cache
def write_config(tmp_path, gce, **extra):
    config = {"plugin": "smc.backend.gce", "projects": ["p"], "auth_kind": "accesstoken", "access_token": TOKEN,
              "api_endpoint": gce.url, "max_results": 3, "retries": 2, "request_timeout": 5,
              "zone_dc_map": {"us-central1": "usc"}}
    config.update(extra)
    path = tmp_path / "test.gce.yml"
    path.write_text(json.dumps(config))
    return str(path)


def register_options():
    """What the plugin loader does on load: register the options from DOCUMENTATION. Without the
    collection finder (ansible-test installs it) builtin fragments resolve only by short name."""
    if C.config.has_configuration_definition("inventory", "gce"):
        return
    doc = yaml.safe_load(gce_inventory.DOCUMENTATION)
    doc["extends_documentation_fragment"] = [f.rsplit(".", 1)[-1] for f in doc["extends_documentation_fragment"]]
    add_fragments(doc, gce_inventory.__file__, fragment_loader=fragment_loader)
    C.config.initialize_plugin_configuration_definitions("inventory", "gce", doc["options"])


def parse(path, cache=True):
    register_options()
    plugin = InventoryModule()
    plugin._load_name = "gce"  # set by the plugin loader in real use
    plugin.parse(InventoryData(), DataLoader(), path, cache=cache)
    if getattr(plugin, "_cache", None):
        plugin.update_cache_if_changed()  # InventoryManager does this after parse()
    return plugin


@pytest.fixture
def seeded(gce):
    for i in range(8):
        gce.state.seed("p", gce.state.zones[i % 4], f"h{i}", labels={"dc": "lab"} if i % 2 else {},
                       status="RUNNING" if i < 7 else "TERMINATED")
    return gce


def test_endpoint_pages_and_groups(seeded, tmp_path):
    plugin = parse(write_config(tmp_path, seeded))
    g = groups(plugin)
    assert len(g["gce"]) == 7 and g["dc_lab"] == ["h1", "h3", "h5"]
    assert g["dc_usc"] == ["h0", "h4"] and g["dc_europe_west1"] == ["h2", "h6"]
    assert seeded.state.stats()["by_method"] == {"instances.aggregatedList": 3}  # 8 instances, 3 per page


def test_endpoint_cache_avoids_api_calls(seeded, tmp_path):
    path = write_config(tmp_path, seeded, cache=True, cache_plugin="jsonfile",
                        cache_connection=str(tmp_path / "cache"), cache_timeout=600)
    parse(path, cache=False)  # refresh: fetch and write the cache
    calls = seeded.state.stats()["requests"]
    plugin = parse(path, cache=True)
    assert seeded.state.stats()["requests"] == calls
    assert len(groups(plugin)["gce"]) == 7


def test_endpoint_retries_then_fails_as_ansible_error(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(GceBackend, "BACKOFF_BASE", 0.001)
    seeded.state.inject(503, count=2)
    assert len(groups(parse(write_config(tmp_path, seeded)))["gce"]) == 7
    seeded.state.inject(429, count=10)
    with pytest.raises(AnsibleError, match="gave up after 3 attempts"):
        parse(write_config(tmp_path, seeded))


def test_endpoint_errors(seeded, tmp_path):
    with pytest.raises(AnsibleError, match="maxResults"):
        parse(write_config(tmp_path, seeded, max_results=900))
    with pytest.raises(AnsibleError, match="unknown instance status 'BOOTING'"):
        parse(write_config(tmp_path, seeded, statuses=["BOOTING"]))
    with pytest.raises(AnsibleError, match="credentials error"):
        parse(write_config(tmp_path, seeded, access_token="not-the-token"))


def test_backend_error_is_not_leaked_raw(seeded, tmp_path, monkeypatch):
    def boom(self, **kwargs):
        raise GceError("list instances of p: zones unreachable", reason="unreachable")
        yield  # pragma: no cover  # pylint: disable=unreachable
    monkeypatch.setattr(GceBackend, "aggregated_instances", boom)
    with pytest.raises(AnsibleError, match="smc.backend.gce: list instances of p: zones unreachable"):
        parse(write_config(tmp_path, seeded))
