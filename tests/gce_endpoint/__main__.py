"""``python -m gce_endpoint --port 0 --port-file /tmp/port`` (run with tests/ on PYTHONPATH)."""
from .server import serve

serve()
