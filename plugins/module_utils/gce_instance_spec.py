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
import re

from ansible_collections.smc.backend.plugins.module_utils.gce import compare_metadata, merge_labels

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
REDACTED = "<redacted>"
# GCE's documented naming rules (RFC 1035 names; label keys and values), matched with fullmatch.
NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
METADATA_KEY_RE = re.compile(r"[a-zA-Z0-9_-]{1,128}")
SCOPE_URL_RE = re.compile(r"https://www\.googleapis\.com/auth/[a-z][a-z0-9._-]{0,99}")
IMAGE_RE = re.compile(r"(https://www\.googleapis\.com/compute/v1/)?(projects/[a-z][-a-z0-9.:]{0,62}/global/images/(family/)?)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
MAX_LABELS = 64
MAX_METADATA_BYTES = 512 * 1024
# Persistent disk sizes in GB (GCE documents 10 GB..64 TB for pd-standard/balanced/ssd, 500 GB..64 TB for
# pd-extreme); the boot disk must also hold the image (at least 10 GB).
DISK_SIZE_LIMITS = {"pd-standard": (10, 65536), "pd-balanced": (10, 65536), "pd-ssd": (10, 65536),
                    "pd-extreme": (500, 65536)}
BOOT_DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd", "pd-extreme")
# gcloud's scope aliases and the URLs they stand for; any other scope must be a full URL.
SCOPE_ALIASES = {
    "bigquery": "bigquery",
    "cloud-platform": "cloud-platform",
    "cloud-source-repos": "source.full_control",
    "cloud-source-repos-ro": "source.read_only",
    "compute-ro": "compute.readonly",
    "compute-rw": "compute",
    "datastore": "datastore",
    "logging-write": "logging.write",
    "monitoring": "monitoring",
    "monitoring-read": "monitoring.read",
    "monitoring-write": "monitoring.write",
    "pubsub": "pubsub",
    "service-control": "servicecontrol",
    "service-management": "service.management.readonly",
    "sql-admin": "sqlservice.admin",
    "storage-full": "devstorage.full_control",
    "storage-ro": "devstorage.read_only",
    "storage-rw": "devstorage.read_write",
    "taskqueue": "taskqueue",
    "trace": "trace.append",
    "userinfo-email": "userinfo.email",
}
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
    """A scope URL, or an alias from SCOPE_ALIASES expanded to its URL."""
    if scope in SCOPE_ALIASES:
        return SCOPE_PREFIX + SCOPE_ALIASES[scope]
    return scope if scope.startswith("https://") else SCOPE_PREFIX + scope


def _show(value):
    """A value for an error message: repr, cut short (hostile values can be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def label_value(key, value):
    """A label value as GCE's string: ints and bools are converted; anything else that is no string fails."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise SpecError(f"labels.{key}: the value must be a string (lowercase letters, digits, '_' or '-', at most "
                    f"63 characters), got {type(value).__name__} {_show(value)}; quote it")


def _check_name(errors, field, value, what="name"):
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        errors.append(f"{field}: {_show(value)} is not a valid GCE {what}: 1 to 63 characters, a lowercase letter "
                      f"first, then lowercase letters, digits or '-', not ending in '-' "
                      f"(regex [a-z]([-a-z0-9]{{0,61}}[a-z0-9])?)")


def _check_int(errors, field, value, low, high, unit="GB"):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{field}: {_show(value)} is out of range; use an integer from {low} to {high} {unit}")


def validate_params(params):
    """Check every option against GCE's documented rules before any API call.

    Returns the list of errors (each names the field and the fix); values of
    ``metadata`` and ``startup_script`` are never quoted. Pure: no API calls.
    """
    errors = []
    _check_name(errors, "name", params.get("name"), "instance name")
    _check_name(errors, "zone", params.get("zone"), "zone name")
    for field in ("machine_type", "network"):
        if params.get(field) is not None:
            _check_name(errors, field, params[field], field.replace("_", " "))
    image = params.get("image")
    if image is not None and (not isinstance(image, str) or not IMAGE_RE.fullmatch(image)):
        errors.append(f"image: {_show(image)} is not an image; use projects/<project>/global/images/[family/]<name> "
                      f"or an image name")
    boot_type = params.get("boot_disk_type")
    if boot_type is not None and boot_type not in BOOT_DISK_TYPES:
        errors.append(f"boot_disk_type: {_show(boot_type)} is not one of {', '.join(BOOT_DISK_TYPES)}")
    if params.get("boot_disk_size_gb") is not None:
        low, high = DISK_SIZE_LIMITS.get(boot_type if boot_type in BOOT_DISK_TYPES else "pd-standard")
        _check_int(errors, "boot_disk_size_gb", params["boot_disk_size_gb"], low, high)
    wait = params.get("wait_timeout")
    if wait is not None:
        _check_int(errors, "wait_timeout", wait, 1, 86400, "seconds")
    name = params.get("name") if isinstance(params.get("name"), str) else ""
    for idx, disk in enumerate(params.get("disks") or []):
        field = f"disks[{idx}]"
        dname = disk.get("name")
        dname = f"data{idx}" if dname is None else dname
        _check_name(errors, f"{field}.name", dname, "disk name")
        if isinstance(dname, str) and len(f"{name}-{dname}") > 63:
            errors.append(f"{field}.name: the disk resource {name}-{dname} is longer than 63 characters; "
                          f"use a shorter disk or instance name")
        dtype = disk.get("type") or "pd-balanced"
        if dtype not in DISK_SIZE_LIMITS:
            errors.append(f"{field}.type: {_show(dtype)} is not one of {', '.join(DISK_SIZE_LIMITS)}")
            dtype = "pd-balanced"
        low, high = DISK_SIZE_LIMITS[dtype]
        _check_int(errors, f"{field}.size_gb", disk.get("size_gb"), low, high, f"GB for {dtype}")
    labels = params.get("labels")
    if labels is not None:
        if len(labels) > MAX_LABELS:
            errors.append(f"labels: {len(labels)} labels given; GCE allows at most {MAX_LABELS}")
        for key, value in labels.items():
            if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
                errors.append(f"labels: key {_show(key)} is invalid; keys are 1 to 63 characters, a lowercase "
                              f"letter first, then lowercase letters, digits, '_' or '-'")
                continue
            try:
                text = label_value(key, value)
            except SpecError as exc:
                errors.append(str(exc))
                continue
            if not LABEL_VALUE_RE.fullmatch(text):
                errors.append(f"labels.{key}: value {_show(text)} is invalid; values are at most 63 lowercase "
                              f"letters, digits, '_' or '-'")
    for idx, tag in enumerate(params.get("tags") or []):
        _check_name(errors, f"tags[{idx}]", tag, "network tag")
    metadata = params.get("metadata")
    if metadata is not None:
        size = 0
        for key, value in metadata.items():
            if not isinstance(key, str) or not METADATA_KEY_RE.fullmatch(key):
                errors.append(f"metadata: key {_show(key)} is invalid; keys are 1 to 128 letters, digits, '_' or '-'")
            elif not isinstance(value, str):
                errors.append(f"metadata.{key}: the value must be a string (got {type(value).__name__}; "
                              f"value not shown); quote it")
            else:
                size += len(key) + len(value.encode("utf-8", "replace"))
        if params.get("startup_script") is not None:
            size += len(params["startup_script"].encode("utf-8", "replace"))
        if size > MAX_METADATA_BYTES:
            errors.append(f"metadata: {size} bytes in total; GCE allows at most {MAX_METADATA_BYTES}")
    for idx, line in enumerate(params.get("ssh_keys") or []):
        if not isinstance(line, str) or "\n" in line or "\r" in line or ":" not in line:
            errors.append(f"ssh_keys[{idx}]: each line must be one 'user:ssh-... key comment' line without newlines")
    sa = params.get("service_account")
    if sa is not None:
        email = sa.get("email") or "default"
        if email != "default" and not re.fullmatch(r"[a-z0-9][a-z0-9._+-]*@[a-z0-9][a-z0-9.-]*[a-z0-9]", email):
            errors.append(f"service_account.email: {_show(email)} is not an account email; use "
                          f"<name>@<project>.iam.gserviceaccount.com or default")
        for idx, scope in enumerate(sa.get("scopes") or []):
            if not isinstance(scope, str) or (scope not in SCOPE_ALIASES and not SCOPE_URL_RE.fullmatch(scope)):
                errors.append(f"service_account.scopes[{idx}]: {_show(scope)} is not a scope; use a URL "
                              f"{SCOPE_PREFIX}<scope> or one of {', '.join(sorted(SCOPE_ALIASES))}")
    confirm = params.get("confirm_delete_disks")
    for idx, dname in enumerate(confirm or []):
        _check_name(errors, f"confirm_delete_disks[{idx}]", dname, "disk name")
    return errors


def auto_delete_disks(instance):
    """Resource names of the data disks (not the boot disk) that deleting ``instance`` would delete."""
    return sorted(short(att.get("source")) for att in (instance or {}).get("disks") or []
                  if not att.get("boot") and att.get("auto_delete"))


def redact(state):
    """A copy of a comparable state with every metadata value replaced by REDACTED."""
    if not state or not isinstance(state.get("metadata"), dict):
        return state
    return dict(state, metadata={k: REDACTED for k in state["metadata"]})


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
        "labels": {k: label_value(k, v) for k, v in params["labels"].items()}
        if params.get("labels") is not None else None,
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
            # metadata may carry secrets: report the keys, never the values
            out.append({"field": "metadata", "keys": changed,
                        "current": {k: REDACTED if k in actual["metadata"] else None for k in changed},
                        "desired": {k: REDACTED for k in changed}})
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
