"""The collection as a whole: it builds into an installable artifact, and every plugin documents itself."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
           ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def _plugins():
    for kind, folder in (("module", "modules"), ("inventory", "inventory"), ("filter", "filter")):
        path = os.path.join(ROOT, "plugins", folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            if name.endswith(".py") and not name.startswith("_"):
                yield kind, name[:-3]


@pytest.mark.parametrize("kind,name", list(_plugins()))
def test_ansible_doc_renders_every_plugin(kind, name):
    out = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", kind, "--json", f"smc.backend.{name}"],
                         capture_output=True, text=True, env=ENV, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)[f"smc.backend.{name}"]["doc"]
    assert doc.get("short_description"), f"{name}: no short_description"
    assert "[WARNING]" not in out.stderr, out.stderr


def test_collection_builds_into_an_installable_artifact(tmp_path):
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), ROOT],
                   capture_output=True, text=True, env=ENV, check=True)
    (artifact,) = list(tmp_path.glob("smc-backend-*.tar.gz"))
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "FILES.json", "galaxy.yml"} - names == {"galaxy.yml"}
    assert "plugins/module_utils/placement.py" in names
    assert not any(n.startswith((".venv", ".collections", "build/", ".cache")) for n in names)
    # The lab belongs to the tests: users install the product (its on-prem role included), not the lab.
    assert not any(n.startswith(("tests/lab", "molecule/", "inventory/lab", "benchmarks/")) for n in names)
    assert not any(n.startswith("playbooks/") and "lab" in os.path.basename(n) for n in names)
    assert "roles/onprem_vm/files/wait-boot.py" in names
    install = tmp_path / "installed"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", str(install), str(artifact)],
                   capture_output=True, text=True, env=ENV, check=True)
    assert (install / "ansible_collections" / "smc" / "backend" / "roles" / "onprem_vm" / "tasks" / "main.yml").exists()
