"""The lab's hosts over direct SSH (tests/lab/lab_ssh.py)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
# The scenario's `lab` fixture (tests/lab/lab_fixture.py), shared by the scenarios.
from lab_fixture import fixture_lab  # noqa: E402,F401 pylint: disable=unused-import
