"""The chaos scenarios' lab and fixtures (tests/lab/chaos_lab.py): a restored lab per case, the split-brain
sampler, the case clock of say()'s stamps."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "tests", "lab"))
from chaos_lab import fixture_case_clock, fixture_chaos_lab, fixture_lab  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
