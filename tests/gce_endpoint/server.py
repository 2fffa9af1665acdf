"""GCE-compatible REST endpoint: state, routing and HTTP server (127.0.0.1 only).

Responses are built from ``google.cloud.compute_v1`` message types and rendered
with ``Message.to_json`` so the real client parses what the real API would send.
Operations are asynchronous: an operation is PENDING when returned, RUNNING
while ``op_seconds`` run, then DONE; its effect on the resource lands when it is
DONE (``instances.get`` shows PROVISIONING/STAGING/STOPPING meanwhile).

Knobs for tests (Python: ``FakeGce.state``; HTTP: ``POST /_fake/...``):
  - ``inject(status, count, match)``: the next ``count`` requests whose
    "METHOD path" contains ``match`` fail with ``status`` (429, 500, 503, 403;
    0 drops the connection without a response).
  - ``fail_operations(count, code, message)``: the next operations end DONE
    with an error and no effect.
  - ``quota_instances``: per-project instance limit (403 quotaExceeded).
  - ``op_seconds`` / ``wait_cap``: how long operations run / the longest a
    ``wait`` call blocks before answering with the current status.
  - ``token``: when set, the only bearer token accepted (else 401).
  - ``stats()``: request counts, by API method, for the benchmark.
"""
import argparse
import base64
import collections
import fnmatch
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from google.cloud import compute_v1

API = "/compute/v1"
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
DEFAULT_ZONES = ("us-central1-a", "us-central1-b", "europe-west1-b", "europe-west1-c")
MAX_PAGE = 500
REASON_STATUS = {
    400: ("invalid", "INVALID_ARGUMENT"),
    401: ("authError", "UNAUTHENTICATED"),
    403: ("quotaExceeded", "PERMISSION_DENIED"),
    404: ("notFound", "NOT_FOUND"),
    409: ("alreadyExists", "ALREADY_EXISTS"),
    412: ("conditionNotMet", "FAILED_PRECONDITION"),
    429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("backendError", "INTERNAL"),
    503: ("backendError", "UNAVAILABLE"),
}


class ApiError(Exception):
    """An error answered with the real GCE JSON error shape."""

    def __init__(self, code, message, reason=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASON_STATUS.get(code, ("backendError", "UNKNOWN"))[0]

    def body(self):
        status = REASON_STATUS.get(self.code, ("", "UNKNOWN"))[1]
        return {"error": {"code": self.code, "message": self.message, "status": status,
                          "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}}


def _now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _fingerprint(value):
    raw = json.dumps(value, sort_keys=True).encode()
    return base64.b64encode(hashlib.sha256(raw).digest()[:8]).decode()


def _short(url):
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


def zone_names(count):
    """``count`` distinct zone names over real-looking regions (for the benchmark)."""
    regions = ["us-central1", "us-east1", "us-east4", "us-west1", "us-west2", "europe-west1", "europe-west2",
               "europe-west3", "europe-west4", "asia-east1", "asia-northeast1", "asia-southeast1",
               "australia-southeast1", "southamerica-east1"]
    names = (f"{r}-{z}" for z in "abcdf" for r in regions)
    return sorted(itertools.islice(names, count))


def _region(zone):
    return zone.rsplit("-", 1)[0]


# --------------------------------------------------------------------------- filters
_TERM = re.compile(r'\(?\s*([A-Za-z][\w.]*)\s*(!=|=|:|\beq\b|\bne\b)\s*("(?:[^"\\]|\\.)*"|[^\s()]+)\s*\)?')


def parse_filter(text):
    """Parse the GCE list filter subset: ``a = b``, ``!=``, ``:``, ``eq``/``ne`` (regex),
    terms joined by spaces/AND (all must match) and OR (any group)."""
    groups = []
    for part in re.split(r"\s+OR\s+", (text or "").strip()):
        terms, pos = [], 0
        part = part.strip()
        while pos < len(part):
            m = _TERM.match(part, pos)
            if not m:
                raise ApiError(400, f"Invalid value for field 'filter': '{text}'. Invalid list filter expression.")
            value = m.group(3)
            if value.startswith('"'):
                value = json.loads(value)
            terms.append((m.group(1), m.group(2), value))
            pos = m.end()
            rest = re.match(r"\s*(AND\s+)?", part[pos:])
            pos += rest.end()
        if terms:
            groups.append(terms)
    return groups


def _lookup(doc, dotted):
    for key in dotted.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _filter_doc(inst):
    """The fields a list filter may name (a cheap subset of the JSON resource)."""
    return {"name": inst.name, "status": inst.status, "labels": dict(inst.labels), "zone": inst.zone,
            "machineType": inst.machine_type, "id": str(inst.id), "tags": {"items": list(inst.tags.items)},
            "cpuPlatform": inst.cpu_platform, "selfLink": inst.self_link}


def filter_matches(groups, doc):
    if not groups:
        return True
    for terms in groups:
        ok = True
        for field, op, value in terms:
            actual = _lookup(doc, field)
            text = "" if actual is None else str(actual).lower() if isinstance(actual, bool) else str(actual)
            if op == ":":
                hit = actual is not None and (value == "*" or fnmatch.fnmatchcase(text, value))
            elif op in ("eq", "ne"):
                hit = re.fullmatch(value, text) is not None
                hit = hit if op == "eq" else not hit
            else:
                hit = actual is not None and fnmatch.fnmatchcase(text, value)
                hit = hit if op == "=" else not hit
            if not hit:
                ok = False
                break
        if ok:
            return True
    return False


# --------------------------------------------------------------------------- state
class _Op:
    def __init__(self, name, project, zone, op_type, target, started, seconds, on_done, error=None):
        self.name, self.project, self.zone, self.op_type, self.target = name, project, zone, op_type, target
        self.started, self.done_at = started, started + seconds
        self.on_done, self.error, self.done = on_done, error, False
        self.polls = 0
        self.insert_time = _now_rfc3339()
        self.end_time = None


class GceState:
    """Everything the endpoint knows. Thread-safe; all methods take the lock."""

    def __init__(self, zones=DEFAULT_ZONES, op_seconds=0.05, wait_cap=2.0, quota_instances=None, token=None,
                 clock=time.monotonic):
        self.lock = threading.RLock()
        self.zones = list(zones)
        self.op_seconds = op_seconds
        self.wait_cap = wait_cap
        self.quota_instances = quota_instances
        self.token = token
        self.clock = clock
        self.instances = {}   # (project, zone) -> {name: compute_v1.Instance}
        self.disks = {}       # (project, zone) -> {name: compute_v1.Disk}
        self.ops = {}         # (project, zone, name) -> _Op
        self.faults = []      # [status, remaining, match]
        self.op_failures = []  # [(code, message, http_status)]
        self.request_ids = {}  # (project, zone, api, requestId) -> _Op
        self.calls = collections.Counter()
        self._ids = itertools.count(4000000000000000000)
        self._ips = itertools.count(2)

    # ---- knobs
    def inject(self, status, count=1, match=""):
        with self.lock:
            self.faults.append([int(status), int(count), match or ""])

    def fail_operations(self, count=1, code="ZONE_RESOURCE_POOL_EXHAUSTED",
                        message="The zone does not have enough resources available to fulfill the request.",
                        http_status=503):
        with self.lock:
            self.op_failures.extend([(code, message, http_status)] * count)

    def stats(self):
        with self.lock:
            return {"requests": sum(self.calls.values()), "by_method": dict(self.calls)}

    def reset_stats(self):
        with self.lock:
            self.calls.clear()

    def configure(self, **knobs):
        with self.lock:
            for key, value in knobs.items():
                if key not in ("op_seconds", "wait_cap", "quota_instances", "token", "zones"):
                    raise ValueError(f"unknown knob {key}")
                setattr(self, key, value)

    # ---- helpers
    def _url(self, project, *parts):
        return "https://www.googleapis.com/compute/v1/projects/" + "/".join((project,) + parts)

    def _check_zone(self, zone):
        if zone not in self.zones:
            raise ApiError(400, f"Invalid value for field 'zone': '{zone}'. Unknown zone.", "invalid")

    def _zone_instances(self, project, zone):
        return self.instances.setdefault((project, zone), {})

    def _zone_disks(self, project, zone):
        return self.disks.setdefault((project, zone), {})

    def take_fault(self, line):
        with self.lock:
            for fault in self.faults:
                if fault[1] > 0 and fault[2] in line:
                    fault[1] -= 1
                    return fault[0]
        return None

    def tick(self):
        """Finish every operation whose time has come; show intermediate statuses."""
        with self.lock:
            now = self.clock()
            for op in self.ops.values():
                if op.done:
                    continue
                if now >= op.done_at:
                    op.done = True
                    op.end_time = _now_rfc3339()
                    if op.error is None and op.on_done:
                        op.on_done()

    def _status(self, op):
        if op.done:
            return "DONE"
        # PENDING until polled or half-way through, then RUNNING
        return "PENDING" if op.polls == 0 and self.clock() < op.started + (op.done_at - op.started) / 2 else "RUNNING"

    def _new_op(self, project, zone, op_type, target_url, on_done):
        error = self.op_failures.pop(0) if self.op_failures else None
        name = f"operation-{int(time.time() * 1000)}-{next(self._ids):x}"
        op = _Op(name, project, zone, op_type, target_url, self.clock(), self.op_seconds, on_done, error)
        self.ops[(project, zone, name)] = op
        return op

    def op_message(self, op):
        msg = compute_v1.Operation(
            kind="compute#operation", id=next(self._ids), name=op.name, operation_type=op.op_type,
            zone=self._url(op.project, "zones", op.zone), target_link=op.target,
            self_link=self._url(op.project, "zones", op.zone, "operations", op.name),
            status=self._status(op), progress=100 if op.done else 0, insert_time=op.insert_time,
            start_time=op.insert_time, user="test@example.invalid")
        if op.done:
            msg.end_time = op.end_time
            if op.error:
                code, message, http_status = op.error
                msg.error = compute_v1.Error(errors=[compute_v1.Errors(code=code, message=message)])
                msg.http_error_status_code = http_status
                msg.http_error_message = "SERVICE UNAVAILABLE" if http_status == 503 else "ERROR"
        return msg

    # ---- seeding (benchmark, inventory tests): instances that already exist
    def seed(self, project, zone, name, status="RUNNING", labels=None, machine_type="e2-standard-4",
             public_ip=False, tags=None):
        with self.lock:
            inst = compute_v1.Instance(
                name=name, machine_type=f"zones/{zone}/machineTypes/{machine_type}", labels=labels or {},
                tags=compute_v1.Tags(items=tags or []),
                network_interfaces=[compute_v1.NetworkInterface(
                    access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
                    if public_ip else [])],
                disks=[compute_v1.AttachedDisk(boot=True, initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12"))])
            self._materialize(project, zone, inst)
            inst.status = status
            return inst

    # ---- instances
    def _materialize(self, project, zone, inst):
        """Fill output-only fields and create boot/data disks, as insert does."""
        for idx, nic in enumerate(inst.network_interfaces):
            n = next(self._ips)
            nic.name = f"nic{idx}"
            nic.network_i_p = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            nic.network = nic.network or self._url(project, "global", "networks", "default")
            for ac in nic.access_configs:
                ac.nat_i_p = f"34.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
                ac.kind = "compute#accessConfig"
        disks = self._zone_disks(project, zone)
        for idx, att in enumerate(inst.disks):
            params = att.initialize_params if "initialize_params" in att else None
            if params is not None and params.source_image or params is not None and params.disk_size_gb:
                dname = params.disk_name or (inst.name if att.boot else f"{inst.name}-disk-{idx}")
                dtype = _short(params.disk_type) or "pd-standard"
                size = params.disk_size_gb or 10
                disks[dname] = compute_v1.Disk(
                    kind="compute#disk", id=next(self._ids), name=dname, size_gb=size, status="READY",
                    type_=self._url(project, "zones", zone, "diskTypes", dtype), zone=self._url(project, "zones", zone),
                    source_image=params.source_image or None, labels=dict(params.labels),
                    self_link=self._url(project, "zones", zone, "disks", dname))
            else:
                dname = _short(att.source)
            disk = disks[dname]
            disk.users.append(self._url(project, "zones", zone, "instances", inst.name))
            att.source = disk.self_link
            att.device_name = att.device_name or dname
            att.disk_size_gb = disk.size_gb
            att.index = idx
            att.kind = "compute#attachedDisk"
            att.type_ = "PERSISTENT"
            att.mode = att.mode or "READ_WRITE"
            att.interface = att.interface or "SCSI"
            if "initialize_params" in att:
                del att.initialize_params
        for sa in inst.service_accounts:
            if sa.email == "default":  # GCE resolves "default" to the project's compute account
                sa.email = "123456789012-compute@developer.gserviceaccount.com"
        inst.kind = "compute#instance"
        inst.id = next(self._ids)
        inst.creation_timestamp = _now_rfc3339()
        inst.zone = self._url(project, "zones", zone)
        inst.machine_type = self._url(project, "zones", zone, "machineTypes", _short(inst.machine_type))
        inst.self_link = self._url(project, "zones", zone, "instances", inst.name)
        inst.label_fingerprint = _fingerprint(dict(inst.labels))
        inst.fingerprint = _fingerprint(inst.name)
        inst.metadata.fingerprint = _fingerprint([(i.key, i.value) for i in inst.metadata.items])
        inst.metadata.kind = "compute#metadata"
        inst.tags.fingerprint = _fingerprint(list(inst.tags.items))
        inst.cpu_platform = "AMD Rome"
        self._zone_instances(project, zone)[inst.name] = inst
        return inst

    def _find(self, project, zone, kind, table, name):
        """The zonal resource `name` of `table` (instances or disks), or the API's 404 for `kind`."""
        self._check_zone(zone)
        found = table(project, zone).get(name)
        if found is None:
            raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/{kind}/{name}' was not found")
        return found

    def _get_instance(self, project, zone, name):
        return self._find(project, zone, "instances", self._zone_instances, name)

    def _validate_insert(self, project, zone, inst):
        if not NAME_RE.match(inst.name or ""):
            raise ApiError(400, f"Invalid value for field 'resource.name': '{inst.name}'. Must be a match of "
                                "regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19})'")
        if not inst.machine_type:
            raise ApiError(400, "Invalid value for field 'resource.machineType': ''. Machine type is required.")
        for key, value in inst.labels.items():
            if not LABEL_KEY_RE.match(key) or not LABEL_VALUE_RE.match(value):
                raise ApiError(400, f"Invalid value for field 'resource.labels': '{key}={value}'. "
                                    "Label keys and values must be lowercase letters, digits, '_' or '-'.")
        if sum(1 for d in inst.disks if d.boot) != 1:
            raise ApiError(400, "Invalid value for field 'resource.disks': exactly one boot disk is required.")
        if not inst.network_interfaces:
            raise ApiError(400, "Invalid value for field 'resource.networkInterfaces': at least one is required.")
        if inst.name in self._zone_instances(project, zone):
            raise ApiError(409, f"The resource 'projects/{project}/zones/{zone}/instances/{inst.name}' "
                                "already exists")
        disks = self._zone_disks(project, zone)
        for idx, att in enumerate(inst.disks):
            if att.source:
                dname = _short(att.source)
                if dname not in disks:
                    raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/disks/{dname}' was not found")
                if disks[dname].users:
                    raise ApiError(400, f"The disk resource 'projects/{project}/zones/{zone}/disks/{dname}' is "
                                        f"already being used by '{_short(disks[dname].users[0])}'",
                                   "resourceInUseByAnotherResource")
            else:
                dname = att.initialize_params.disk_name or (inst.name if att.boot else f"{inst.name}-disk-{idx}")
                if dname in disks:
                    raise ApiError(409, f"The resource 'projects/{project}/zones/{zone}/disks/{dname}' already exists")
        count = sum(len(v) for (p, _z), v in self.instances.items() if p == project)
        if self.quota_instances is not None and count >= self.quota_instances:
            raise ApiError(403, f"Quota 'INSTANCES' exceeded.  Limit: {float(self.quota_instances)} in region "
                                f"{_region(zone)}.", "quotaExceeded")

    def insert_instance(self, project, zone, body):
        with self.lock:
            self._check_zone(zone)
            try:
                inst = compute_v1.Instance.from_json(body, ignore_unknown_fields=False)
            except Exception as exc:  # json_format.ParseError and friends
                raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
            self._validate_insert(project, zone, inst)
            failing = bool(self.op_failures)
            url = self._url(project, "zones", zone, "instances", inst.name)
            if failing:
                return self._new_op(project, zone, "insert", url, None)
            self._materialize(project, zone, inst)
            inst.status = "PROVISIONING"
            op = self._new_op(project, zone, "insert", url, lambda: setattr(inst, "status", "RUNNING"))
            op.transit = (inst, "STAGING")
            return op

    def delete_instance(self, project, zone, name):
        with self.lock:
            inst = self._get_instance(project, zone, name)

            def done():
                self._zone_instances(project, zone).pop(name, None)
                disks = self._zone_disks(project, zone)
                for att in inst.disks:
                    disk = disks.get(_short(att.source))
                    if disk is None:
                        continue
                    if att.auto_delete:
                        disks.pop(disk.name)
                    else:
                        kept = [u for u in disk.users if _short(u) != name]
                        del disk.users[:]
                        disk.users.extend(kept)
            op = self._new_op(project, zone, "delete", inst.self_link, done)
            if op.error is None:
                inst.status = "STOPPING"
            return op

    def set_status(self, project, zone, name, action):
        with self.lock:
            inst = self._get_instance(project, zone, name)
            target, transit = ("RUNNING", "STAGING") if action == "start" else ("TERMINATED", "STOPPING")
            if inst.status == target:
                return self._new_op(project, zone, action, inst.self_link, None)
            op = self._new_op(project, zone, action, inst.self_link, lambda: setattr(inst, "status", target))
            if op.error is None:
                inst.status = transit
            return op

    def set_labels(self, project, zone, name, body):
        with self.lock:
            inst = self._get_instance(project, zone, name)
            req = compute_v1.InstancesSetLabelsRequest.from_json(body or "{}", ignore_unknown_fields=False)
            if req.label_fingerprint != inst.label_fingerprint:
                raise ApiError(412, "Labels fingerprint either invalid or resource labels have changed",
                               "conditionNotMet")
            for key, value in req.labels.items():
                if not LABEL_KEY_RE.match(key) or not LABEL_VALUE_RE.match(value):
                    raise ApiError(400, f"Invalid value for field 'labels': '{key}={value}'.")
            labels = dict(req.labels)

            def done():
                inst.labels.clear()
                inst.labels.update(labels)
                inst.label_fingerprint = _fingerprint(labels)
            return self._new_op(project, zone, "setLabels", inst.self_link, done)

    def wait_time(self, project, zone, name):
        with self.lock:
            op = self.get_op(project, zone, name)
            return max(0.0, min(op.done_at - self.clock(), self.wait_cap))

    def get_op(self, project, zone, name):
        with self.lock:
            self._check_zone(zone)
            op = self.ops.get((project, zone, name))
            if op is None:
                raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/operations/{name}' was not found")
            return op

    def poll_op(self, project, zone, name):
        with self.lock:
            op = self.get_op(project, zone, name)
            transit = getattr(op, "transit", None)
            if transit and not op.done and op.error is None and transit[0].status == "PROVISIONING":
                transit[0].status = transit[1]
            op.polls += 1
            return self.op_message(op)

    # ---- listing
    def _sorted(self, project, zones, filt):
        groups = parse_filter(filt)
        out = []
        for zone in zones:
            for name in sorted(self._zone_instances(project, zone)):
                inst = self.instances[(project, zone)][name]
                if groups and not filter_matches(groups, _filter_doc(inst)):
                    continue
                out.append((zone, inst))
        return out

    @staticmethod
    def page(query, total):
        raw = query.get("maxResults", [str(MAX_PAGE)])[0]
        if not raw.isdigit() or not 0 <= int(raw) <= MAX_PAGE:
            raise ApiError(400, f"Invalid value for field 'maxResults': '{raw}'. Must be in the range [0, 500].")
        size = int(raw) or MAX_PAGE
        token = query.get("pageToken", [""])[0]
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            raise ApiError(400, f"Invalid value for field 'pageToken': '{token}'.") from None
        end = start + size
        nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < total else ""
        return start, end, nxt

    def list_instances(self, project, zone, query):
        with self.lock:
            self._check_zone(zone)
            rows = self._sorted(project, [zone], query.get("filter", [""])[0])
            start, end, nxt = self.page(query, len(rows))
            return compute_v1.InstanceList(
                kind="compute#instanceList", id=f"projects/{project}/zones/{zone}/instances",
                items=[inst for _z, inst in rows[start:end]], next_page_token=nxt or None,
                self_link=self._url(project, "zones", zone, "instances"))

    def aggregated_instances(self, project, query):
        with self.lock:
            rows = self._sorted(project, self.zones, query.get("filter", [""])[0])
            start, end, nxt = self.page(query, len(rows))
            by_zone = collections.defaultdict(list)
            for zone, inst in rows[start:end]:
                by_zone[zone].append(inst)
            items = {}
            for zone in self.zones:
                scope = f"zones/{zone}"
                if by_zone.get(zone):
                    items[scope] = compute_v1.InstancesScopedList(instances=by_zone[zone])
                else:
                    items[scope] = compute_v1.InstancesScopedList(warning=compute_v1.Warning(
                        code="NO_RESULTS_ON_PAGE", message=f"There are no results for scope '{scope}' on this page.",
                        data=[compute_v1.Data(key="scope", value=scope)]))
            return compute_v1.InstanceAggregatedList(
                kind="compute#instanceAggregatedList", id=f"projects/{project}/aggregated/instances",
                items=items, next_page_token=nxt or None, self_link=self._url(project, "aggregated", "instances"))

    def list_zones(self, project, query):
        with self.lock:
            start, end, nxt = self.page(query, len(self.zones))
            return compute_v1.ZoneList(kind="compute#zoneList", id=f"projects/{project}/zones", items=[
                compute_v1.Zone(kind="compute#zone", name=z, status="UP", region=self._url(project, "regions", _region(z)),
                                self_link=self._url(project, "zones", z)) for z in self.zones[start:end]],
                next_page_token=nxt or None)

    # ---- disks
    def get_disk(self, project, zone, name):
        with self.lock:
            return self._find(project, zone, "disks", self._zone_disks, name)

    def list_disks(self, project, zone, query):
        with self.lock:
            self._check_zone(zone)
            disks = [d for _n, d in sorted(self._zone_disks(project, zone).items())]
            start, end, nxt = self.page(query, len(disks))
            return compute_v1.DiskList(kind="compute#diskList", items=disks[start:end], next_page_token=nxt or None)

    def delete_disk(self, project, zone, name):
        with self.lock:
            disk = self.get_disk(project, zone, name)
            if disk.users:
                raise ApiError(400, f"The disk resource 'projects/{project}/zones/{zone}/disks/{name}' is already "
                                    f"being used by '{_short(disk.users[0])}'", "resourceInUseByAnotherResource")
            return self._new_op(project, zone, "delete", disk.self_link,
                                lambda: self._zone_disks(project, zone).pop(name, None))


# --------------------------------------------------------------------------- HTTP
_P = r"/projects/(?P<project>[^/]+)"
_Z = _P + r"/zones/(?P<zone>[^/]+)"
ROUTES = [
    ("GET", _P + r"/aggregated/instances$", "instances.aggregatedList"),
    ("GET", _P + r"/zones$", "zones.list"),
    ("GET", _Z + r"/instances$", "instances.list"),
    ("POST", _Z + r"/instances$", "instances.insert"),
    ("GET", _Z + r"/instances/(?P<name>[^/]+)$", "instances.get"),
    ("DELETE", _Z + r"/instances/(?P<name>[^/]+)$", "instances.delete"),
    ("POST", _Z + r"/instances/(?P<name>[^/]+)/start$", "instances.start"),
    ("POST", _Z + r"/instances/(?P<name>[^/]+)/stop$", "instances.stop"),
    ("POST", _Z + r"/instances/(?P<name>[^/]+)/setLabels$", "instances.setLabels"),
    ("GET", _Z + r"/disks$", "disks.list"),
    ("GET", _Z + r"/disks/(?P<name>[^/]+)$", "disks.get"),
    ("DELETE", _Z + r"/disks/(?P<name>[^/]+)$", "disks.delete"),
    ("GET", _Z + r"/operations/(?P<name>[^/]+)$", "zoneOperations.get"),
    ("POST", _Z + r"/operations/(?P<name>[^/]+)/wait$", "zoneOperations.wait"),
]
ROUTES = [(m, re.compile("^" + API + p), n) for m, p, n in ROUTES]


def dispatch(state, method, api, args, query, body):
    """Run one API method; return a compute_v1 message."""
    p, z, n = args.get("project"), args.get("zone"), args.get("name")
    if api == "zoneOperations.wait":
        delay = state.wait_time(p, z, n)
        if delay:
            time.sleep(delay)
        state.tick()
    handlers = {
        "instances.aggregatedList": lambda: state.aggregated_instances(p, query),
        "zones.list": lambda: state.list_zones(p, query),
        "instances.list": lambda: state.list_instances(p, z, query),
        "instances.insert": lambda: state.op_message(state.insert_instance(p, z, body)),
        "instances.get": lambda: state._get_instance(p, z, n),
        "instances.delete": lambda: state.op_message(state.delete_instance(p, z, n)),
        "instances.start": lambda: state.op_message(state.set_status(p, z, n, "start")),
        "instances.stop": lambda: state.op_message(state.set_status(p, z, n, "stop")),
        "instances.setLabels": lambda: state.op_message(state.set_labels(p, z, n, body)),
        "disks.list": lambda: state.list_disks(p, z, query),
        "disks.get": lambda: state.get_disk(p, z, n),
        "disks.delete": lambda: state.op_message(state.delete_disk(p, z, n)),
        "zoneOperations.get": lambda: state.poll_op(p, z, n),
        "zoneOperations.wait": lambda: state.poll_op(p, z, n),
    }
    with state.lock:
        request_id = query.get("requestId", [""])[0]
        if request_id and method != "GET":  # a retried mutation with the same requestId gets the same operation
            key = (p, z, api, request_id)
            if key in state.request_ids:
                return state.op_message(state.request_ids[key])
            msg = handlers[api]()
            state.request_ids[key] = state.ops[(p, z, msg.name)]
            return msg
        return handlers[api]()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGce/1.0"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, code, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout); fine
            self.close_connection = True

    def _handle(self, method):
        state = self.server.state
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/_fake/") or url.path == "/token":
            return self._control(method, url.path, body)
        route = next(((api, m.groupdict()) for verb, rx, api in ROUTES
                      if verb == method for m in [rx.match(url.path)] if m), None)
        with state.lock:
            state.calls[route[0] if route else "unknown"] += 1
        fault = state.take_fault(f"{method} {url.path}")
        if fault == 0:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        try:
            if fault:
                raise ApiError(fault, {429: "Rate Limit Exceeded", 403: "Quota exceeded for quota metric "
                                       "'Queries' and limit 'Queries per minute'", 500: "Internal Error",
                                       503: "The service is currently unavailable."}.get(fault, "Injected fault"),
                               "rateLimitExceeded" if fault in (403, 429) else None)
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                raise ApiError(401, "Request is missing required authentication credential.", "required")
            if state.token and auth != "Bearer " + state.token:
                raise ApiError(401, "Invalid Credentials", "authError")
            if route is None:
                raise ApiError(404, f"Not Found: {method} {url.path}", "notFound")
            state.tick()
            msg = dispatch(state, method, route[0], route[1], query, body)
            return self._send(200, type(msg).to_json(msg, use_integers_for_enums=False, indent=None).encode())
        except ApiError as err:
            return self._send(err.code, err.body())

    def _control(self, method, path, body):
        state = self.server.state
        data = json.loads(body) if body.strip().startswith("{") else {}
        if path == "/token":  # OAuth2 token endpoint for service-account credentials
            return self._send(200, {"access_token": "fake-sa-token", "expires_in": 3600, "token_type": "Bearer"})
        if path == "/_fake/stats":
            return self._send(200, state.stats())
        if method != "POST":
            return self._send(405, {"error": "POST only"})
        if path == "/_fake/reset_stats":
            state.reset_stats()
        elif path == "/_fake/faults":
            state.inject(data.get("status", 503), data.get("count", 1), data.get("match", ""))
        elif path == "/_fake/fail_operations":
            state.fail_operations(data.get("count", 1))
        elif path == "/_fake/config":
            state.configure(**data)
        elif path == "/_fake/seed":
            for row in data.get("instances", []):
                state.seed(**row)
        else:
            return self._send(404, {"error": "unknown control path"})
        return self._send(200, {"ok": True})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class FakeGce:
    """Run the endpoint in a thread: ``with FakeGce() as gce: gce.url, gce.state``."""

    def __init__(self, state=None, port=0, **state_kwargs):
        self.state = state or GceState(**state_kwargs)
        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.httpd.state = self.state
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(argv=None):
    """``python -m gce_endpoint --port 0 --port-file F``: serve on 127.0.0.1 until killed."""
    parser = argparse.ArgumentParser(prog="gce_endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--zones", type=int, default=0, help="serve this many generated zones (default: 4 fixed)")
    parser.add_argument("--op-seconds", type=float, default=0.05)
    parser.add_argument("--token", help="the only bearer token accepted")
    args = parser.parse_args(argv)
    zones = zone_names(args.zones) if args.zones else DEFAULT_ZONES
    gce = FakeGce(port=args.port, zones=zones, op_seconds=args.op_seconds, token=args.token)
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(str(gce.port))
        import os
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"gce_endpoint listening on {gce.url}", flush=True)
    try:
        gce.httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        gce.httpd.server_close()
