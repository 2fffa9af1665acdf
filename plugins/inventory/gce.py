# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: gce
short_description: Compute Engine instances as smc.backend hosts
description:
  - Lists the instances of one or more projects with one C(instances.aggregatedList) call per page
    (not one call per zone), following C(pageToken), and adds them as hosts.
  - Every host gets C(dc) from its O(dc_label) label, or else from O(zone_dc_map) (zone, then region),
    or else its region; it joins the groups C(gce) and O(dc_group_prefix)C(<dc>).
  - Host variables are C(dc), C(ansible_host), C(gce_project), C(gce_zone), C(gce_region), C(gce_status),
    C(gce_labels), C(gce_tags), C(gce_machine_type), C(gce_private_ip), C(gce_public_ip), C(gce_id).
  - The configuration file name must end in C(.gce.yml) or C(.gce.yaml).
author: smc.backend developers (@smc-backend)
requirements:
  - google-cloud-compute >= 1.14
  - google-auth
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [smc.backend.gce]
    type: str
  projects:
    description: Projects to list.
    required: true
    type: list
    elements: str
  auth_kind:
    description:
      - V(application) uses Application Default Credentials, V(serviceaccount) a key file or JSON,
        V(accesstoken) a bearer token.
    type: str
    default: application
    choices: [application, serviceaccount, accesstoken]
    env:
      - name: GCP_AUTH_KIND
  service_account_file:
    description: Service-account JSON key file for O(auth_kind=serviceaccount).
    type: path
    env:
      - name: GCP_SERVICE_ACCOUNT_FILE
  service_account_contents:
    description: Service-account JSON key for O(auth_kind=serviceaccount). Never logged.
    type: str
    env:
      - name: GCP_SERVICE_ACCOUNT_CONTENTS
  access_token:
    description: OAuth2 access token for O(auth_kind=accesstoken). Never logged.
    type: str
    env:
      - name: GCP_ACCESS_TOKEN
  api_endpoint:
    description: Override the Compute Engine API endpoint (private endpoints, tests). An explicit V(http://) is kept.
    type: str
    env:
      - name: GCP_API_ENDPOINT
  filters:
    description:
      - Compute Engine list filter expressions, sent with the request; all must match.
      - For example V(labels.role = storage) or V(name = storage-*).
    type: list
    elements: str
    default: []
  zones:
    description: Keep only instances in these zones (client side; the listing is still one aggregated call).
    type: list
    elements: str
    default: []
  statuses:
    description:
      - Instance statuses that become hosts; an empty list keeps every status.
      - V(RUNNING) is the default because only running instances can be reached.
      - Transitional statuses are V(PROVISIONING), V(STAGING) (starting), V(STOPPING), V(SUSPENDING),
        V(REPAIRING); resting ones are V(RUNNING), V(STOPPED), V(SUSPENDED), V(TERMINATED) (stopped).
        Add V(STOPPED), V(TERMINATED), V(SUSPENDED) to see stopped hosts too, for example to mark them
        down for placement; group them with O(keyed_groups) on C(gce_status).
      - A status not listed here (including a future one) leaves the host out.
    type: list
    elements: str
    default: [RUNNING]
  hostnames:
    description:
      - Preference order for the inventory hostname; the first that is set wins.
    type: list
    elements: str
    default: [name]
    choices: [name, private_ip, public_ip]
  ansible_host:
    description: Preference order for C(ansible_host); hosts with neither address get none.
    type: list
    elements: str
    default: [public_ip, private_ip]
    choices: [public_ip, private_ip, name]
  dc_label:
    description: Label that names the host's data center.
    type: str
    default: dc
  zone_dc_map:
    description: Data center of a zone or region, for instances without the O(dc_label) label.
    type: dict
    default: {}
  dc_group_prefix:
    description: Prefix of the data-center groups.
    type: str
    default: dc_
  max_results:
    description: Page size of the aggregated listing (at most 500).
    type: int
    default: 500
  request_timeout:
    description: Timeout in seconds of one HTTP request.
    type: float
    default: 30.0
  retries:
    description: Retries after HTTP 429, 5xx, a rate-limit 403, a connection error or a timeout, with backoff.
    type: int
    default: 5
"""

EXAMPLES = r"""
# inventory/prod.gce.yml
plugin: smc.backend.gce
projects: [smc-prod]
filters:
  - labels.role = storage
statuses: [RUNNING, STAGING, STOPPING, TERMINATED]
hostnames: [name]
zone_dc_map:
  europe-west1: ew1
  us-central1-a: usc1
keyed_groups:
  - key: gce_labels.role
    prefix: role
  - key: gce_status | lower
    prefix: status
compose:
  weight: gce_labels.weight | default(1) | int
  state: "'up' if gce_status == 'RUNNING' else 'down'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/smc-gce-inventory
cache_timeout: 300
"""

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.smc.backend.plugins.module_utils.gce import GceBackend, GceError, message_to_dict

VALID_SUFFIXES = (".gce.yml", ".gce.yaml")
STATUSES = ("PROVISIONING", "STAGING", "RUNNING", "STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED",
            "REPAIRING", "TERMINATED")


def _short(url):
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


def host_record(project, zone, instance):
    """The cacheable, JSON-friendly facts of one instance (``instance`` is a to_dict() mapping)."""
    nics = instance.get("network_interfaces") or [{}]
    access = (nics[0].get("access_configs") or [{}])[0]
    return {
        "name": instance.get("name"),
        "id": str(instance.get("id", "")),
        "project": project,
        "zone": zone,
        "region": zone.rsplit("-", 1)[0],
        "status": instance.get("status"),
        "labels": dict(instance.get("labels") or {}),
        "tags": list((instance.get("tags") or {}).get("items") or []),
        "machine_type": _short(instance.get("machine_type")),
        "private_ip": nics[0].get("network_i_p") or None,
        "public_ip": access.get("nat_i_p") or None,
    }


def dc_of(record, dc_label="dc", zone_dc_map=None):
    """Data center: the label, else the zone or region mapping, else the region."""
    zone_dc_map = zone_dc_map or {}
    return (record["labels"].get(dc_label) or zone_dc_map.get(record["zone"])
            or zone_dc_map.get(record["region"]) or record["region"])


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "smc.backend.gce"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(VALID_SUFFIXES)

    def _create_client(self):
        """One backend for all projects (each call names its project)."""
        names = ("auth_kind", "service_account_file", "service_account_contents",
                 "access_token", "api_endpoint", "request_timeout", "retries")
        opts = {k: self.get_option(k) for k in names}
        opts["project"] = self.get_option("projects")[0]
        return GceBackend(**{k: v for k, v in opts.items() if v is not None})

    def _fetch(self, client):
        """Host records of every project: one aggregatedList call per page per project."""
        filters = self.get_option("filters") or []
        filter_expr = " AND ".join(f"({f})" for f in filters) if len(filters) > 1 else (filters[0] if filters else None)
        records = []
        for project in self.get_option("projects"):
            for zone, instance in client.aggregated_instances(filter_expr=filter_expr,
                                                              max_results=self.get_option("max_results"),
                                                              project=project):
                records.append(host_record(project, zone, message_to_dict(instance)))
        return records

    def _wanted(self, record):
        statuses = {s.upper() for s in self.get_option("statuses") or []}
        zones = set(self.get_option("zones") or [])
        return (not statuses or record["status"] in statuses) and (not zones or record["zone"] in zones)

    def _hostname(self, record, seen):
        name = next((record[k] for k in self.get_option("hostnames") if record.get(k)), None)
        if name in seen:
            self.display.warning(f"GCE instance name {name} is used in {seen[name]} and {record['zone']}; "
                                 f"the second is added as {name}.{record['zone']}")
            name = f"{name}.{record['zone']}"
        return name

    def _add_hosts(self, records):
        strict = self.get_option("strict")
        dc_label, zone_dc_map = self.get_option("dc_label"), self.get_option("zone_dc_map")
        prefix = self.get_option("dc_group_prefix")
        self.inventory.add_group("gce")
        seen = {}
        for record in records:
            if not self._wanted(record):
                continue
            host = self._hostname(record, seen)
            if not host:
                continue
            seen[host] = record["zone"]
            self.inventory.add_host(host, group="gce")
            dc = dc_of(record, dc_label, zone_dc_map)
            group = self.inventory.add_group(self._sanitize_group_name(prefix + dc))
            self.inventory.add_child(group, host)
            hostvars = {"dc": dc}
            hostvars.update({f"gce_{k}": v for k, v in record.items() if k != "name"})
            address = next((record[k] for k in self.get_option("ansible_host") if record.get(k)), None)
            if address:
                hostvars["ansible_host"] = address
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)

    def _populate(self, client):
        """Fetch through ``client`` and add the hosts (no cache involved)."""
        records = self._fetch(client)
        self._add_hosts(records)
        return records

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        for status in self.get_option("statuses") or []:
            if status.upper() not in STATUSES:
                raise AnsibleError(f"statuses: unknown instance status {status!r}; known: {', '.join(STATUSES)}")
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        records = None
        if use_cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        try:
            if records is None:
                records = self._populate(self._create_client())
            else:
                self._add_hosts(records)
        except GceError as exc:
            raise AnsibleError(f"smc.backend.gce: {exc.message}") from None
        if update_cache:
            self._cache[cache_key] = records
