"""Make the collection importable as ``ansible_collections.smc.backend`` for unit tests.

``make venv`` links the checkout into ``.collections/ansible_collections/smc/backend``;
this adds ``.collections`` to ``sys.path`` so tests import plugins by their real name.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS = os.path.join(_ROOT, ".collections")
_LINK = os.path.join(_COLLECTIONS, "ansible_collections", "smc", "backend")
if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink("../../..", _LINK)
for _path in (_COLLECTIONS, os.path.join(_ROOT, "tests")):  # tests/: the GCE test endpoint package
    if _path not in sys.path:
        sys.path.insert(0, _path)

# module_utils/tls_ca runs openssl through the caller's runner (a module passes AnsibleModule.run_command).
import local_commands  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.smc.backend.plugins.module_utils import tls_ca  # noqa: E402 pylint: disable=wrong-import-position

tls_ca.use(local_commands.run)
