#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: gce_instance
short_description: Create, start, stop, delete and converge a Compute Engine instance
description:
  - Manages one Compute Engine instance with the google-cloud-compute library, for smc.backend storage
    hosts. It sets machine type, zone, boot image, extra persistent disks for ZFS pools, labels (C(dc), C(role)),
    network tags, metadata (ssh keys, startup script), service account and scopes.
  - Idempotent. Labels are changed in place (C(setLabels)) and the run state with start/stop.
    Any other difference (machine type, disks, tags, metadata, service account, network) is reported in
    RV(requires_recreate); the instance is never re-created silently. Deleting takes O(state=absent).
  - Data disks are named C(<instance>-<disk name>) and attached with the device name C(<disk name>), so
    they appear on the host as C(/dev/disk/by-id/google-<disk name>). With O(disks[].auto_delete=false)
    (the default) they survive deletion of the instance and are re-attached when it is created again.
  - Zone operations are awaited up to O(wait_timeout) seconds.
author: smc.backend developers (@smc-backend)
extends_documentation_fragment:
  - smc.backend.gce
attributes:
  check_mode:
    support: full
    description: Reads the instance and reports what would change; calls nothing that writes.
  diff_mode:
    support: full
    description: Returns the comparable state before and after.
options:
  name:
    description:
      - Instance name (RFC 1035, checked before any API call), 1 to 63 characters, a lowercase letter first,
        then lowercase letters, digits or C(-), not ending in C(-).
    type: str
    required: true
  zone:
    description: Zone of the instance, for example V(europe-west1-b).
    type: str
    required: true
  state:
    description:
      - V(present) the instance exists; a new one is started, an existing one keeps its run state.
      - V(started) exists and runs. V(stopped) exists and is stopped (C(TERMINATED)).
      - V(absent) the instance is deleted (data disks with O(disks[].auto_delete=false) are kept). If data
        disks attached with C(auto_delete) would be deleted with it, the module fails before any change,
        listing them, unless O(confirm_delete_disks) names every one of them.
      - An instance that is C(SUSPENDING), C(SUSPENDED) or C(REPAIRING) makes V(started)/V(stopped) fail.
    type: str
    default: present
    choices: [present, started, stopped, absent]
  machine_type:
    description: Machine type, for example V(e2-standard-4). Required to create.
    type: str
  image:
    description: Boot image, used only when the instance is created.
    type: str
    default: projects/debian-cloud/global/images/family/debian-12
  boot_disk_size_gb:
    description:
      - Boot disk size in GB, used only when the instance is created.
      - From 10 (500 for V(pd-extreme)) to 65536 GB, as documented for Compute Engine persistent disks.
    type: int
  boot_disk_type:
    description: Boot disk type, used only when the instance is created.
    type: str
    choices: [pd-standard, pd-balanced, pd-ssd, pd-extreme]
  disks:
    description:
      - Extra persistent disks, for example the vdevs of a ZFS pool. Compared by name, size and type.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Device name; the disk resource is C(<instance>-<name>). Defaults to C(data<index>).
          - An RFC 1035 name; C(<instance>-<name>) must fit in 63 characters.
        type: str
      size_gb:
        description:
          - Size in GB, an integer from 10 (500 for V(pd-extreme)) to 65536, Compute Engine's documented
            persistent disk limits. Checked before any API call.
        type: int
        required: true
      type:
        description: Disk type.
        type: str
        default: pd-balanced
        choices: [pd-standard, pd-balanced, pd-ssd, pd-extreme]
      auto_delete:
        description: Delete the disk with the instance. Off by default so pool data survives.
        type: bool
        default: false
  labels:
    description:
      - Labels, for example C(dc) and C(role). Changed in place.
      - Keys not listed are kept unless O(purge_labels=true).
      - At most 64 labels. Keys are 1 to 63 lowercase letters, digits, C(_) or C(-), starting with a letter;
        values at most 63 lowercase letters, digits, C(_) or C(-). Integer and boolean values are converted to
        strings (V(true)/V(false)); any other non-string value fails naming the label.
    type: dict
  purge_labels:
    description: Remove labels not listed in O(labels).
    type: bool
    default: false
  tags:
    description: Network tags (firewall targets), RFC 1035 names.
    type: list
    elements: str
  metadata:
    description:
      - Metadata items. Only the keys given here are compared.
      - Values may be secret, so they are never shown in results, diffs or error messages (only the keys are).
        Keys are 1 to 128 letters, digits, C(_) or C(-); values must be strings.
    type: dict
  ssh_keys:
    description: Lines of the C(ssh-keys) metadata item, C(user:ssh-ed25519 AAAA... comment).
    type: list
    elements: str
  startup_script:
    description:
      - The C(startup-script) metadata item. Never shown in results, diffs or error messages.
    type: str
  service_account:
    description: Service account the instance runs as.
    type: dict
    suboptions:
      email:
        description: Account email, or V(default) for the project's Compute Engine default account.
        type: str
        default: default
      scopes:
        description:
          - OAuth scopes, each a URL C(https://www.googleapis.com/auth/<scope>) or one of gcloud's aliases
            (V(cloud-platform), V(compute-ro), V(compute-rw), V(storage-ro), V(storage-rw), V(storage-full),
            V(logging-write), V(monitoring), V(monitoring-write), V(monitoring-read), V(bigquery), V(pubsub),
            V(datastore), V(sql-admin), V(taskqueue), V(trace), V(userinfo-email), V(service-control),
            V(service-management), V(cloud-source-repos), V(cloud-source-repos-ro)), expanded to their URLs.
        type: list
        elements: str
        default: [cloud-platform]
  network:
    description: VPC network name. V(default) when creating if not set.
    type: str
  external_ip:
    description: Give the instance an ephemeral external IP. None when creating if not set.
    type: bool
  on_requires_recreate:
    description:
      - What to do when the instance differs in a field that cannot be changed in place.
      - V(fail) fails and lists the fields. V(warn) applies what can be changed and warns.
    type: str
    default: fail
    choices: [fail, warn]
  wait_timeout:
    description: Seconds to wait for each zone operation (1 to 86400).
    type: int
    default: 300
  confirm_delete_disks:
    description:
      - With O(state=absent), the data disks attached with C(auto_delete) that may be deleted together with
        the instance, by disk resource name (C(<instance>-<disk name>)) or device name.
      - Without it, O(state=absent) fails before any change when such disks are attached, listing them.
    type: list
    elements: str
notes:
  - Every option is checked against Compute Engine's documented rules (names, labels, disk sizes, scopes)
    before any API call; an error names the field and the fix.
  - A failed create (for example C(409 alreadyExists) or an operation ending in an error) is reported as
    failed with the API's error and C(changed=false) when no instance was created.
  - Network tags and metadata can be changed in place by the Compute Engine API, but this module only
    reports them, so a change to a storage host is always a visible decision.
"""

EXAMPLES = r"""
- name: Create a storage host with two ZFS disks
  smc.backend.gce_instance:
    project: smc-prod
    zone: europe-west1-b
    name: storage-ew1-01
    machine_type: n2-standard-8
    disks:
      - {name: zfs0, size_gb: 500, type: pd-ssd}
      - {name: zfs1, size_gb: 500, type: pd-ssd}
    labels: {dc: ew1, role: storage}
    tags: [smc-storage, tinc]
    ssh_keys: ["ansible:ssh-ed25519 AAAAC3Nza... ansible@deploy"]
    service_account: {email: default, scopes: [cloud-platform]}

- name: Stop it, with a service-account key file
  smc.backend.gce_instance:
    project: smc-prod
    zone: europe-west1-b
    name: storage-ew1-01
    state: stopped
    auth_kind: serviceaccount
    service_account_file: /etc/smc/gce-deployer.json

- name: Delete it (data disks are kept)
  smc.backend.gce_instance:
    project: smc-prod
    zone: europe-west1-b
    name: storage-ew1-01
    state: absent

- name: Delete a scratch host together with its auto_delete data disk, named explicitly
  smc.backend.gce_instance:
    project: smc-prod
    zone: europe-west1-b
    name: scratch-ew1-01
    state: absent
    confirm_delete_disks: [scratch-ew1-01-tmp0]
"""

RETURN = r"""
actions:
  description:
    - What was done (or would be, in check mode), in order. On failure, only what was done before it.
    - Metadata values never appear in any result; they are shown as C(<redacted>).
  returned: always
  type: list
  elements: str
  sample: [create]
instance:
  description: The instance after the run (in check mode, as it would be); empty when absent.
  returned: always
  type: dict
  sample:
    name: storage-ew1-01
    zone: europe-west1-b
    status: RUNNING
    machine_type: n2-standard-8
    labels: {dc: ew1, role: storage}
    tags: [smc-storage, tinc]
    disks: [{name: zfs0, size_gb: 500, type: pd-ssd, auto_delete: false}]
    private_ip: 10.132.0.7
    public_ip: null
requires_recreate:
  description: Fields that differ and cannot be changed in place, with current and desired values.
  returned: always
  type: list
  elements: dict
  sample: [{field: machine_type, current: e2-standard-4, desired: n2-standard-8}]
retained_disks:
  description: Data disks kept after O(state=absent) deleted the instance.
  returned: when the instance was deleted
  type: list
  elements: str
deleted_disks:
  description: Data disks deleted with the instance by O(state=absent) (they were attached with C(auto_delete)).
  returned: when the instance was deleted
  type: list
  elements: str
reattached_disks:
  description: Existing data disks attached by the create instead of new ones.
  returned: when the instance was created
  type: list
  elements: str
http_code:
  description: HTTP status of the failed API call, when there was one.
  returned: failure
  type: int
reason:
  description: GCE error reason (C(notFound), C(alreadyExists), C(quotaExceeded), C(rateLimitExceeded), C(timeout)...).
  returned: failure
  type: str
"""

from ansible_collections.smc.backend.plugins.module_utils import gce_instance_spec as spec
from ansible_collections.smc.backend.plugins.module_utils.gce import GceError, GceModule, message_to_dict


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        zone=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=list(spec.STATES)),
        machine_type=dict(type="str"),
        image=dict(type="str", default="projects/debian-cloud/global/images/family/debian-12"),
        boot_disk_size_gb=dict(type="int"),
        boot_disk_type=dict(type="str", choices=list(spec.BOOT_DISK_TYPES)),
        disks=dict(type="list", elements="dict", options=dict(
            name=dict(type="str"),
            size_gb=dict(type="int", required=True),
            type=dict(type="str", default="pd-balanced", choices=["pd-standard", "pd-balanced", "pd-ssd",
                                                                  "pd-extreme"]),
            auto_delete=dict(type="bool", default=False),
        )),
        labels=dict(type="dict"),
        purge_labels=dict(type="bool", default=False),
        tags=dict(type="list", elements="str"),
        metadata=dict(type="dict", no_log=True),
        ssh_keys=dict(type="list", elements="str", no_log=False),
        startup_script=dict(type="str", no_log=True),
        service_account=dict(type="dict", options=dict(
            email=dict(type="str", default="default"),
            scopes=dict(type="list", elements="str", default=["cloud-platform"]),
        )),
        network=dict(type="str"),
        external_ip=dict(type="bool"),
        on_requires_recreate=dict(type="str", default="fail", choices=["fail", "warn"]),
        wait_timeout=dict(type="int", default=300),
        confirm_delete_disks=dict(type="list", elements="str"),
    )


def read_actual(backend, zone, name, with_disks):
    """(normalized actual state, instance dict) or (None, None) when absent."""
    instance = message_to_dict(backend.get_instance(zone, name))
    if instance is None:
        return None, None
    disks = {}
    attached = instance.get("disks") or [] if with_disks else []
    for att in attached:
        if not att.get("boot"):
            disk = message_to_dict(backend.get_disk(zone, spec.short(att.get("source"))))
            if disk:
                disks[disk["name"]] = disk
    return spec.actual_from_instance(instance, disks), instance


def unconfirmed_disks(name, doomed, confirmed):
    """Disks of ``doomed`` (resource names) not named in ``confirmed`` (resource or device names)."""
    confirmed = set(confirmed or [])
    prefix = f"{name}-"
    return [d for d in doomed
            if d not in confirmed and not (d.startswith(prefix) and d[len(prefix):] in confirmed)]


def apply(module, backend, desired, actual, planned, result, doomed):
    p = module.params
    zone, name, timeout = p["zone"], p["name"], p["wait_timeout"]
    for action in planned["actions"]:
        if action == "create":
            wanted = [spec.data_disk_name(name, d) for d in desired["disks"] or []]
            existing = [d for d in wanted if backend.get_disk(zone, d) is not None]
            body = spec.insert_body(desired, backend.project, p["image"], p["boot_disk_size_gb"],
                                    p["boot_disk_type"], existing)
            create(backend, zone, name, body, timeout)
            result["reattached_disks"] = existing
        elif action == "delete":
            backend.delete_instance(zone, name, timeout)
            result["retained_disks"] = [f"{name}-{d['name']}" for d in actual["disks"] if not d["auto_delete"]]
            result["deleted_disks"] = doomed
        elif action == "set_labels":
            backend.set_labels(zone, name, planned["labels"], actual["label_fingerprint"], timeout)
        else:
            backend.set_status(zone, name, action, timeout)
        result["actions"].append(action)
        result["changed"] = True


def create(backend, zone, name, body, timeout):
    """insert_instance; on failure, GceError with ``created`` telling whether an instance exists now."""
    try:
        backend.insert_instance(zone, body, timeout)
    except GceError as exc:
        exc.created = False
        if exc.code != 409 and exc.reason != "alreadyExists":  # 409: it was there before, not made by us
            try:
                exc.created = backend.get_instance(zone, name) is not None
            except GceError:
                exc.created = True  # unknown: do not claim nothing changed
        raise


def main():
    module = GceModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    result = {"changed": False, "actions": [], "requires_recreate": [], "instance": {}}
    errors = spec.validate_params(p)
    if errors:
        module.fail_json(msg=f"invalid options ({len(errors)}): " + "; ".join(errors), errors=errors, **result)
    doomed = []
    try:
        desired = spec.desired_from_params(p)
        backend = module.backend
        actual, instance = read_actual(backend, p["zone"], p["name"],
                                       p["disks"] is not None and p["state"] != "absent")
        planned = spec.plan(desired, actual, p["state"], p["purge_labels"])
    except spec.SpecError as exc:
        module.fail_json(msg=str(exc), **result)
    except GceError as exc:
        module.fail_gce(exc, **result)

    if "delete" in planned["actions"]:
        doomed = spec.auto_delete_disks(instance)
        missing = unconfirmed_disks(p["name"], doomed, p["confirm_delete_disks"])
        if missing:
            module.fail_json(msg=f"deleting instance {p['name']} would also delete its data disks attached with "
                                 f"auto_delete: {', '.join(missing)}. Nothing was changed. To delete them, set "
                                 f"confirm_delete_disks: [{', '.join(missing)}]", disks_to_delete=missing, **result)
    planned_result = dict(result, changed=bool(planned["actions"]), actions=planned["actions"],
                          requires_recreate=planned["requires_recreate"])
    if planned["requires_recreate"]:
        message = spec.recreate_message(p["name"], planned["requires_recreate"])
        if p["on_requires_recreate"] == "fail":
            module.fail_json(msg=message, **planned_result)
        module.warn(message)
    if module._diff:
        planned_result["diff"] = {"before": spec.redact(planned["before"]) or {},
                                  "after": spec.redact(planned["after"]) or {},
                                  "before_header": f"{p['zone']}/{p['name']}",
                                  "after_header": f"{p['zone']}/{p['name']}"}
    if module.check_mode or not planned["actions"]:
        planned_result["instance"] = spec.redact(planned["after"]) or {}
        if "delete" in planned["actions"]:
            planned_result["deleted_disks"] = doomed
        module.exit_json(**planned_result)
    result.update(requires_recreate=planned["requires_recreate"])
    if "diff" in planned_result:
        result["diff"] = planned_result["diff"]
    try:
        apply(module, backend, desired, actual, planned, result, doomed)
        if p["state"] != "absent":
            after = read_actual(backend, p["zone"], p["name"], True)[0]
            result["instance"] = spec.redact(spec.comparable(after)) or {}
    except GceError as exc:
        if getattr(exc, "created", False):
            result["changed"] = True
            result["actions"].append("create")
        if not result["changed"]:
            result.pop("diff", None)
        module.fail_gce(exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
