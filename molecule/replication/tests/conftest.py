"""The lab's hosts over direct SSH (tests/lab/lab_ssh.py), and the controller's placement kept as it was."""
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
# The scenario's `lab` fixture (tests/lab/lab_fixture.py), shared by the scenarios.
from lab_fixture import fixture_lab  # noqa: E402,F401 pylint: disable=unused-import


@pytest.fixture(scope="session", autouse=True)
def keep_controller_placement(tmp_path_factory):
    """The scenario's switchover and ring change rewrite the controller's placement and plans; the lab's
    restore at the end gives the hosts back their state, this gives the controller back its files."""
    lab_dir = os.path.join(ROOT, "inventory", "lab")
    saved = tmp_path_factory.mktemp("placement")
    shutil.copy2(os.path.join(lab_dir, "placement.json"), saved / "placement.json")
    shutil.copytree(os.path.join(lab_dir, "plans"), saved / "plans")
    yield
    shutil.copy2(saved / "placement.json", os.path.join(lab_dir, "placement.json"))
    shutil.rmtree(os.path.join(lab_dir, "plans"))
    shutil.copytree(saved / "plans", os.path.join(lab_dir, "plans"))
