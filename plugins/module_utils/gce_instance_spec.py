# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired vs actual state of one GCE instance. Pure: plain dicts in, plain dicts out.

What can change in place, and how:
  - labels: ``instances.setLabels`` (with the label fingerprint)
  - status: ``instances.start`` / ``instances.stop``
Everything else (machine type, data disks, network tags, metadata, service
account, network) is reported in ``requires_recreate`` with the current and the
desired value. Nothing is ever re-created silently; deleting takes state=absent.
"""
from ansible_collections.smc.backend.plugins.module_utils.gce import compare_metadata, merge_labels

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
RUNNING_LIKE = frozenset(("PROVISIONING", "STAGING", "RUNNING"))
STOPPED_LIKE = frozenset(("STOPPING", "STOPPED", "TERMINATED"))
# Statuses from which start/stop cannot converge without a human (resume, repair).
STUCK = frozenset(("SUSPENDING", "SUSPENDED", "REPAIRING"))
STATES = ("present", "started", "stopped", "absent")


class SpecError(ValueError):
    """The desired state is invalid, or cannot be reached from the actual one."""


def short(url):
    """Last path element of a GCE URL (``.../machineTypes/e2-small`` -> ``e2-small``)."""
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


def full_scope(scope):
    return scope if scope.startswith("https://") else SCOPE_PREFIX + scope


def data_disk_name(instance, disk):
    """Resource name of a data disk: ``<instance>-<disk name>``; the device name is the disk name."""
    return f"{instance}-{disk['name']}"


def desired_from_params(params):
    """Normalized desired state from module params. None means "not managed"."""
    metadata = dict(params.get("metadata") or {})
    if params.get("ssh_keys"):
        metadata["ssh-keys"] = "\n".join(params["ssh_keys"])
    if params.get("startup_script") is not None:
        metadata["startup-script"] = params["startup_script"]
    disks = []
    for idx, disk in enumerate(params.get("disks") or []):
        name = disk.get("name") or f"data{idx}"
        disks.append({"name": name, "size_gb": int(disk["size_gb"]), "type": disk.get("type") or "pd-balanced",
                      "auto_delete": bool(disk.get("auto_delete"))})
    names = [d["name"] for d in disks]
    if len(set(names)) != len(names):
        raise SpecError(f"disk names must be unique, got {names}")
    sa = params.get("service_account")
    service_account = None
    if sa is not None:
        service_account = {"email": sa.get("email") or "default",
                           "scopes": sorted(full_scope(s) for s in sa.get("scopes") or ["cloud-platform"])}
    return {
        "name": params["name"],
        "zone": params["zone"],
        "machine_type": params.get("machine_type"),
        "labels": params.get("labels"),
        "tags": sorted(params["tags"]) if params.get("tags") is not None else None,
        "metadata": metadata if (params.get("metadata") is not None or params.get("ssh_keys")
                                 or params.get("startup_script") is not None) else None,
        "disks": disks if params.get("disks") is not None else None,
        "service_account": service_account,
        "network": params.get("network"),
        "external_ip": params.get("external_ip"),
    }


def actual_from_instance(instance, disks=None):
    """Normalized actual state from ``compute_v1.Instance.to_dict()`` (snake_case) and
    ``disks``: {disk resource name: Disk.to_dict()} for the attached data disks."""
    disks = disks or {}
    data_disks = []
    for att in instance.get("disks") or []:
        if att.get("boot"):
            continue
        resource = disks.get(short(att.get("source"))) or {}
        data_disks.append({"name": att.get("device_name") or short(att.get("source")),
                           "size_gb": int(resource.get("size_gb") or att.get("disk_size_gb") or 0),
                           "type": short(resource.get("type_")) or None,
                           "auto_delete": bool(att.get("auto_delete"))})
    nics = instance.get("network_interfaces") or [{}]
    sas = instance.get("service_accounts") or []
    return {
        "name": instance.get("name"),
        "zone": short(instance.get("zone")),
        "status": instance.get("status"),
        "machine_type": short(instance.get("machine_type")),
        "labels": dict(instance.get("labels") or {}),
        "label_fingerprint": instance.get("label_fingerprint"),
        "tags": sorted((instance.get("tags") or {}).get("items") or []),
        "metadata": {i["key"]: i.get("value", "") for i in (instance.get("metadata") or {}).get("items") or []},
        "disks": sorted(data_disks, key=lambda d: d["name"]),
        "service_account": {"email": sas[0].get("email"), "scopes": sorted(sas[0].get("scopes") or [])}
        if sas else None,
        "network": short(nics[0].get("network")) or None,
        "external_ip": bool(nics[0].get("access_configs")),
        "private_ip": nics[0].get("network_i_p"),
        "public_ip": ((nics[0].get("access_configs") or [{}])[0]).get("nat_i_p"),
    }


def status_action(status, state):
    """"start", "stop" or None to bring ``status`` to ``state``; SpecError when stuck."""
    if state == "present" or state == "absent":
        return None
    if status in STUCK:
        raise SpecError(f"instance is {status}; it cannot be {state} by this module "
                        f"(resume or repair it first)")
    if state == "started":
        return None if status in RUNNING_LIKE else "start"
    return None if status in STOPPED_LIKE else "stop"


def _recreate_fields(desired, actual):
    out = []

    def check(field, want, have):
        if want is not None and want != have:
            out.append({"field": field, "current": have, "desired": want})

    check("machine_type", desired["machine_type"], actual["machine_type"])
    check("tags", desired["tags"], actual["tags"])
    if desired["metadata"] is not None:
        changed = compare_metadata(actual["metadata"], desired["metadata"])
        if changed:
            out.append({"field": "metadata", "keys": changed,
                        "current": {k: actual["metadata"].get(k) for k in changed},
                        "desired": {k: desired["metadata"][k] for k in changed}})
    if desired["disks"] is not None:
        want = sorted(desired["disks"], key=lambda d: d["name"])
        have = [dict(d, type=d["type"] or w["type"]) for d, w in zip(actual["disks"], want)] + actual["disks"][len(want):]
        check("disks", want, have)
    sa = desired["service_account"]
    if sa is not None:
        have = actual["service_account"]
        if sa["email"] == "default" and have is not None:  # GCE resolves "default" to the project's account
            sa = dict(sa, email=have["email"])
        check("service_account", sa, have)
    check("network", desired["network"], actual["network"])
    check("external_ip", desired["external_ip"], actual["external_ip"])
    return out


def plan(desired, actual, state, purge_labels=False):
    """What to do. Returns dict(actions, labels, requires_recreate, before, after).

    ``actions`` is an ordered list of "create", "delete", "set_labels", "start", "stop".
    ``labels`` is the full label map to send with set_labels.
    """
    if state not in STATES:
        raise SpecError(f"state must be one of {', '.join(STATES)}")
    result = {"actions": [], "labels": None, "requires_recreate": [], "before": comparable(actual), "after": None}
    if state == "absent":
        result["actions"] = ["delete"] if actual else []
        return result
    if actual is None:
        if not desired["machine_type"]:
            raise SpecError("machine_type is required to create an instance")
        result["actions"] = ["create"] + (["stop"] if state == "stopped" else [])
        after = {k: v for k, v in desired.items() if v is not None}
        after["status"] = "TERMINATED" if state == "stopped" else "RUNNING"
        after.setdefault("labels", {})
        result["after"] = after
        return result
    after = comparable(actual)
    result["requires_recreate"] = _recreate_fields(desired, actual)
    if desired["labels"] is not None:
        labels = merge_labels(actual["labels"], desired["labels"], purge_labels)
        if labels != actual["labels"]:
            result["actions"].append("set_labels")
            result["labels"] = labels
            after["labels"] = labels
    action = status_action(actual["status"], state)
    if action:
        result["actions"].append(action)
        after["status"] = "RUNNING" if action == "start" else "TERMINATED"
    result["after"] = after
    return result


def comparable(actual):
    """The part of an actual state shown in diffs (drops fingerprints)."""
    if actual is None:
        return None
    return {k: v for k, v in actual.items() if k != "label_fingerprint"}


def recreate_message(name, fields):
    parts = [f"{f['field']} ({f['current']!r} -> {f['desired']!r})" for f in fields]
    return (f"instance {name} differs in fields that cannot be changed in place: {'; '.join(parts)}. "
            f"It was not re-created: delete it with state=absent and run again to re-create it "
            f"(data disks with auto_delete=false are kept and re-attached).")


def insert_body(desired, project, image, boot_disk_size_gb=None, boot_disk_type=None, existing_disks=()):
    """The snake_case ``compute_v1.Instance`` mapping to create ``desired``.

    ``existing_disks``: names of data-disk resources that already exist (kept from a
    deleted instance); they are attached by source instead of created.
    """
    zone = desired["zone"]
    boot_params = {"source_image": image}
    if boot_disk_size_gb:
        boot_params["disk_size_gb"] = int(boot_disk_size_gb)
    if boot_disk_type:
        boot_params["disk_type"] = f"zones/{zone}/diskTypes/{boot_disk_type}"
    disks = [{"boot": True, "auto_delete": True, "initialize_params": boot_params}]
    for disk in desired["disks"] or []:
        resource = data_disk_name(desired["name"], disk)
        attached = {"boot": False, "auto_delete": disk["auto_delete"], "device_name": disk["name"]}
        if resource in existing_disks:
            attached["source"] = f"projects/{project}/zones/{zone}/disks/{resource}"
        else:
            attached["initialize_params"] = {"disk_name": resource, "disk_size_gb": disk["size_gb"],
                                             "disk_type": f"zones/{zone}/diskTypes/{disk['type']}"}
        disks.append(attached)
    nic = {"network": f"global/networks/{desired['network'] or 'default'}"}
    if desired["external_ip"]:
        nic["access_configs"] = [{"name": "External NAT", "type_": "ONE_TO_ONE_NAT"}]
    body = {
        "name": desired["name"],
        "machine_type": f"zones/{zone}/machineTypes/{desired['machine_type']}",
        "labels": dict(desired["labels"] or {}),
        "disks": disks,
        "network_interfaces": [nic],
    }
    if desired["tags"]:
        body["tags"] = {"items": list(desired["tags"])}
    if desired["metadata"]:
        body["metadata"] = {"items": [{"key": k, "value": v} for k, v in sorted(desired["metadata"].items())]}
    if desired["service_account"]:
        body["service_accounts"] = [dict(desired["service_account"])]
    return body
