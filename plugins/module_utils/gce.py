# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One wrapper around google-cloud-compute for smc.backend modules and inventory.

``GceBackend`` owns everything that talks to the API: credentials (Application
Default Credentials, a service-account file or JSON, or an access token), the
endpoint override, retries with exponential backoff on 429/5xx/connection
errors, waiting on zone operations with a deadline, and turning every
``google.api_core`` exception into one ``GceError`` shape. ``GceModule`` wraps
AnsibleModule the way amazon.aws's AnsibleAWSModule does. The ``compare_*``
helpers at the bottom are pure and never call the API.
"""
import json
import random
import re
import time
import traceback
import uuid

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import google.auth
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import compute_v1
    from google.oauth2 import credentials as oauth2_credentials
    from google.oauth2 import service_account
except ImportError:
    HAS_GCE = False
    GCE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_GCE = True
    GCE_IMPORT_ERROR = None

COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"
AUTH_KINDS = ("application", "serviceaccount", "accesstoken")
# 403s that are rate limits (retry), unlike quotaExceeded (a resource quota: do not retry).
RETRYABLE_403_REASONS = frozenset(("rateLimitExceeded", "userRateLimitExceeded"))
SECRET_OPTIONS = ("access_token", "service_account_contents")


def gce_argument_spec():
    """Connection options shared by every smc.backend GCE module (see doc fragment smc.backend.gce)."""
    return dict(
        project=dict(type="str", required=True, fallback=(env_fallback, ["GCP_PROJECT"])),
        auth_kind=dict(type="str", default="application", choices=list(AUTH_KINDS),
                       fallback=(env_fallback, ["GCP_AUTH_KIND"])),
        service_account_file=dict(type="path", fallback=(env_fallback, ["GCP_SERVICE_ACCOUNT_FILE"])),
        service_account_contents=dict(type="jsonarg", no_log=True,
                                      fallback=(env_fallback, ["GCP_SERVICE_ACCOUNT_CONTENTS"])),
        access_token=dict(type="str", no_log=True, fallback=(env_fallback, ["GCP_ACCESS_TOKEN"])),
        api_endpoint=dict(type="str", fallback=(env_fallback, ["GCP_API_ENDPOINT"])),
        request_timeout=dict(type="float", default=60.0),
        retries=dict(type="int", default=5),
    )


class GceError(Exception):
    """The one failure shape: message, HTTP code, GCE reason, and whether a retry could help."""

    def __init__(self, message, code=None, reason=None, retryable=False, errors=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.retryable = retryable
        self.errors = errors or []

    @classmethod
    def from_exception(cls, exc, action=None):
        prefix = f"{action}: " if action else ""
        if isinstance(exc, GceError):
            return exc
        if HAS_GCE and isinstance(exc, api_exceptions.GoogleAPICallError):
            errors = [e for e in (exc.errors or []) if isinstance(e, dict)]
            reason = errors[0].get("reason") if errors else getattr(exc, "reason", None)
            code = exc.code if isinstance(exc.code, int) else None
            message = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", exc.message or str(exc))
            return cls(prefix + message, code=code, reason=reason,
                       retryable=is_retryable(exc), errors=errors)
        if is_retryable(exc):
            return cls(f"{prefix}connection error: {exc}", reason="connectionError", retryable=True)
        if HAS_GCE and isinstance(exc, auth_exceptions.GoogleAuthError):
            return cls(f"{prefix}credentials error: {exc}", reason="authError")
        return cls(f"{prefix}{type(exc).__name__}: {exc}")

    def to_dict(self):
        return {"msg": self.message, "http_code": self.code, "reason": self.reason, "errors": self.errors}


def is_retryable(exc):
    """429, 5xx (not 501), rate-limit 403s, connection errors and timeouts."""
    if not HAS_GCE:
        return False
    if isinstance(exc, api_exceptions.TooManyRequests):
        return True
    if isinstance(exc, api_exceptions.ServerError):
        return not isinstance(exc, api_exceptions.MethodNotImplemented)
    if isinstance(exc, api_exceptions.Forbidden):
        return any(isinstance(e, dict) and e.get("reason") in RETRYABLE_403_REASONS for e in exc.errors or [])
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            auth_exceptions.TransportError, ConnectionError))


def build_credentials(auth_kind="application", service_account_file=None, service_account_contents=None,
                      access_token=None, scopes=None):
    """Credentials for ``auth_kind``; errors name the missing option, never a secret."""
    scopes = list(scopes or [COMPUTE_SCOPE])
    if auth_kind == "accesstoken":
        if not access_token:
            raise GceError("auth_kind=accesstoken requires access_token (or GCP_ACCESS_TOKEN)")
        return oauth2_credentials.Credentials(token=access_token)
    if auth_kind == "serviceaccount":
        try:
            if service_account_contents:
                info = service_account_contents
                if not isinstance(info, dict):
                    info = json.loads(info)
                return service_account.Credentials.from_service_account_info(info, scopes=scopes)
            if service_account_file:
                return service_account.Credentials.from_service_account_file(service_account_file, scopes=scopes)
        except (ValueError, KeyError, OSError) as exc:
            # the exception text may quote the key material; report only its type
            raise GceError(f"cannot load service account credentials ({type(exc).__name__})") from None
        raise GceError("auth_kind=serviceaccount requires service_account_file or service_account_contents")
    if auth_kind == "application":
        try:
            credentials, _project = google.auth.default(scopes=scopes)
        except auth_exceptions.DefaultCredentialsError as exc:
            raise GceError(f"Application Default Credentials not found: {exc}", reason="authError") from None
        return credentials
    raise GceError(f"unknown auth_kind {auth_kind!r}; expected one of {', '.join(AUTH_KINDS)}")


class GceBackend:
    """All Compute Engine calls of smc.backend go through here."""

    BACKOFF_BASE = 1.0    # seconds before the first retry; doubles each time
    BACKOFF_MAX = 32.0
    POLL_INTERVAL = 0.5   # pause between zoneOperations.wait calls that return early

    def __init__(self, project, auth_kind="application", service_account_file=None, service_account_contents=None,
                 access_token=None, api_endpoint=None, request_timeout=60.0, retries=5, credentials=None,
                 sleep=time.sleep, clock=time.monotonic):
        if not HAS_GCE:
            raise GceError(missing_required_lib("google-cloud-compute"))
        self.project = project
        self.api_endpoint = api_endpoint
        self.request_timeout = request_timeout
        self.retries = max(0, int(retries))
        self.sleep = sleep
        self.clock = clock
        self.calls = 0      # HTTP attempts made, retries included
        self.retried = 0
        self._auth = dict(auth_kind=auth_kind, service_account_file=service_account_file,
                          service_account_contents=service_account_contents, access_token=access_token)
        self._credentials = credentials
        self._clients = {}

    @classmethod
    def from_params(cls, params, **kwargs):
        keys = ("project", "auth_kind", "service_account_file", "service_account_contents", "access_token",
                "api_endpoint", "request_timeout", "retries")
        return cls(**{k: params.get(k) for k in keys if params.get(k) is not None}, **kwargs)

    # ---- connection
    @property
    def credentials(self):
        if self._credentials is None:
            self._credentials = build_credentials(**self._auth)
        return self._credentials

    def client(self, kind):
        """A cached ``compute_v1.<kind>`` (REST transport) honouring the endpoint override."""
        if kind not in self._clients:
            options = ClientOptions(api_endpoint=self.api_endpoint) if self.api_endpoint else None
            self._clients[kind] = getattr(compute_v1, kind)(credentials=self.credentials, transport="rest",
                                                            client_options=options)
        return self._clients[kind]

    def call(self, method, request, action, deadline=None):
        """Run ``method(request=...)`` with our own retries (the SDK's are turned off)."""
        attempt = 0
        while True:
            self.calls += 1
            timeout = self.request_timeout
            if deadline is not None:
                timeout = max(0.1, min(timeout, deadline - self.clock()))
            try:
                return method(request=request, retry=None, timeout=timeout)
            except Exception as exc:  # translated below; nothing escapes untranslated
                err = GceError.from_exception(exc, action)
                out_of_time = deadline is not None and self.clock() >= deadline
                if not err.retryable or attempt >= self.retries or out_of_time:
                    if err.retryable and attempt:
                        err.message += f" (gave up after {attempt + 1} attempts)"
                    raise err from None
            delay = min(self.BACKOFF_MAX, self.BACKOFF_BASE * (2 ** attempt)) * (0.5 + random.random() / 2)
            attempt += 1
            self.retried += 1
            self.sleep(delay)

    def wait(self, operation, zone, timeout):
        """Wait for a zone operation to be DONE; raise GceError on its error or on timeout."""
        deadline = self.clock() + timeout
        ops = self.client("ZoneOperationsClient")
        done = compute_v1.Operation.Status.DONE
        while operation.status != done:
            if self.clock() >= deadline:
                raise GceError(f"timed out after {timeout:g}s waiting for operation {operation.name} "
                               f"({operation.operation_type} in {zone}); it may still complete",
                               reason="timeout", retryable=True)
            request = compute_v1.WaitZoneOperationRequest(project=self.project, zone=zone, operation=operation.name)
            started = self.clock()
            try:
                operation = self.call(ops.wait, request, f"wait for {operation.name}", deadline=deadline)
            except GceError as err:
                if not err.retryable or self.clock() < deadline:
                    raise
                continue  # the wait call itself ran out of time: report the timeout above
            if operation.status != done and self.clock() - started < self.POLL_INTERVAL:
                self.sleep(min(self.POLL_INTERVAL, max(0.0, deadline - self.clock())))
        if operation.error and operation.error.errors:
            first = operation.error.errors[0]
            raise GceError(f"operation {operation.operation_type} on {operation.target_link.rsplit('/', 1)[-1]} "
                           f"failed: {first.code}: {first.message}", code=operation.http_error_status_code or None,
                           reason=first.code, errors=[{"reason": e.code, "message": e.message}
                                                      for e in operation.error.errors])
        return operation

    def _mutate(self, method, request, action, zone, timeout):
        if hasattr(request, "request_id"):
            request.request_id = str(uuid.uuid4())  # makes a retried mutation idempotent server-side
        return self.wait(self.call(method, request, action), zone, timeout)

    # ---- instances and disks
    def _get_or_none(self, method, request, action):
        try:
            return self.call(method, request, action)
        except GceError as err:
            if err.code == 404:
                return None
            raise

    def get_instance(self, zone, name):
        """The instance, or None when it does not exist."""
        request = compute_v1.GetInstanceRequest(project=self.project, zone=zone, instance=name)
        return self._get_or_none(self.client("InstancesClient").get, request, f"get instance {name}")

    def get_disk(self, zone, name):
        """The disk, or None when it does not exist."""
        request = compute_v1.GetDiskRequest(project=self.project, zone=zone, disk=name)
        return self._get_or_none(self.client("DisksClient").get, request, f"get disk {name}")

    def insert_instance(self, zone, body, timeout):
        """Create from a snake_case dict (see gce_instance_spec.insert_body) and wait."""
        request = compute_v1.InsertInstanceRequest(project=self.project, zone=zone,
                                                   instance_resource=compute_v1.Instance(body))
        return self._mutate(self.client("InstancesClient").insert, request, f"create instance {body['name']}",
                            zone, timeout)

    def delete_instance(self, zone, name, timeout):
        request = compute_v1.DeleteInstanceRequest(project=self.project, zone=zone, instance=name)
        return self._mutate(self.client("InstancesClient").delete, request, f"delete instance {name}", zone, timeout)

    def set_status(self, zone, name, action, timeout):
        """``action`` is "start" or "stop"."""
        cls = compute_v1.StartInstanceRequest if action == "start" else compute_v1.StopInstanceRequest
        request = cls(project=self.project, zone=zone, instance=name)
        method = getattr(self.client("InstancesClient"), action)
        return self._mutate(method, request, f"{action} instance {name}", zone, timeout)

    def set_labels(self, zone, name, labels, fingerprint, timeout):
        request = compute_v1.SetLabelsInstanceRequest(
            project=self.project, zone=zone, instance=name,
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                labels=labels, label_fingerprint=fingerprint))
        return self._mutate(self.client("InstancesClient").set_labels, request, f"set labels on {name}",
                            zone, timeout)

    # ---- listing (each page is one retried call)
    def _pages(self, method, request, action):
        while True:
            page = next(iter(self.call(method, request, action).pages), None)
            if page is None:
                return
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def aggregated_instances(self, filter_expr=None, max_results=500, project=None):
        """Yield (zone, Instance) over every zone with one aggregatedList call per page."""
        project = project or self.project
        request = compute_v1.AggregatedListInstancesRequest(
            project=project, max_results=max_results)
        if filter_expr:
            request.filter = filter_expr
        for page in self._pages(self.client("InstancesClient").aggregated_list, request,
                                f"list instances of {project}"):
            if page.unreachables:
                raise GceError(f"zones unreachable while listing {project}: {', '.join(page.unreachables)}",
                               reason="unreachable", retryable=True)
            for scope, scoped in page.items.items():
                for instance in scoped.instances:
                    yield scope.rsplit("/", 1)[-1], instance

    def zone_instances(self, zone, filter_expr=None, max_results=500, project=None):
        """Yield Instances of one zone (instances.list); used to compare call counts."""
        request = compute_v1.ListInstancesRequest(project=project or self.project, zone=zone,
                                                  max_results=max_results)
        if filter_expr:
            request.filter = filter_expr
        for page in self._pages(self.client("InstancesClient").list, request, f"list instances in {zone}"):
            yield from page.items

    def zones(self, project=None):
        request = compute_v1.ListZonesRequest(project=project or self.project)
        return [z.name for page in self._pages(self.client("ZonesClient").list, request, "list zones")
                for z in page.items]


class GceModule:
    """AnsibleModule wrapper: shared connection options, SDK check, backend, one failure shape."""

    def __init__(self, argument_spec, **kwargs):
        spec = gce_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if not HAS_GCE:
            self.module.fail_json(msg=missing_required_lib("google-cloud-compute"), exception=GCE_IMPORT_ERROR)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._backend = None

    @property
    def backend(self):
        if self._backend is None:
            self._backend = GceBackend.from_params(self.params)
        return self._backend

    def fail_gce(self, err, **result):
        """Fail with the GceError shape (message, http_code, reason, errors) plus ``result``."""
        err = GceError.from_exception(err)
        details = err.to_dict()
        details.update(result)
        self.module.fail_json(**details)

    def __getattr__(self, name):
        return getattr(self.module, name)


def message_to_dict(message):
    """A compute_v1 message as a plain snake_case dict (None stays None)."""
    return None if message is None else type(message).to_dict(message)


# --------------------------------------------------------------------------- pure helpers (no API calls)
def compare_labels(current, desired, purge=False):
    """Return (to_set, to_unset): labels to add or change, keys to remove (only with purge)."""
    current = dict(current or {})
    desired = dict(desired or {})
    to_set = {k: v for k, v in desired.items() if current.get(k) != v}
    to_unset = sorted(k for k in current if k not in desired) if purge else []
    return to_set, to_unset


def merge_labels(current, desired, purge=False):
    """The full label map after applying ``compare_labels`` (setLabels replaces the whole map)."""
    to_set, to_unset = compare_labels(current, desired, purge)
    merged = {k: v for k, v in (current or {}).items() if k not in to_unset}
    merged.update(to_set)
    return merged


def compare_metadata(current, desired):
    """Keys of ``desired`` whose value differs in ``current`` (keys only in ``current`` are not ours)."""
    current = current or {}
    return sorted(k for k, v in (desired or {}).items() if current.get(k) != v)
