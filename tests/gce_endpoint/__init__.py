"""A small GCE-compatible REST endpoint for tests (127.0.0.1 only).

It implements the subset of the Compute Engine v1 API that smc.backend uses:
instances insert/get/list/aggregatedList/delete/start/stop/setLabels, disks
get/list/delete, zones list, zoneOperations get/wait.  Every response body is
rendered from the google-cloud-compute message types, so the real client parses
real JSON; errors use the real ``{"error": {...}}`` shape.
"""
from .server import FakeGce, GceState, serve  # noqa: F401
