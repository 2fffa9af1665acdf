"""roles/project_limits: argument_specs documents every default as defaults/main.yml sets it, and the default
classes and reserve are input the module accepts (for a host of 1 GiB as well as a large one)."""
import os
import re

import yaml

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl

ROLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))), "roles", "project_limits")


def load(path):
    with open(os.path.join(ROLE, path), encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_argument_specs_match_defaults():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        documented = options[name]["default"]
        if isinstance(value, str):
            value, documented = re.sub(r"\s+", " ", value), re.sub(r"\s+", " ", documented)
        assert documented == value, name


def test_default_classes_and_reserve_are_accepted():
    defaults = load("defaults/main.yml")
    spec = pl.validate({"projects": [{"id": "p-%s" % k, "class": k} for k in defaults["project_limits_classes"]],
                        "classes": defaults["project_limits_classes"], "reserve": defaults["project_limits_reserve"],
                        "default_class": defaults["project_limits_default_class"],
                        "user_prefix": defaults["project_limits_user_prefix"], "parent": defaults["project_limits_parent"],
                        "uid_min": defaults["project_limits_uid_min"], "uid_max": defaults["project_limits_uid_max"]})
    for memory in (1 << 30, 256 << 30):
        units = pl.desired_units(spec, memory)
        assert len(units) == len(defaults["project_limits_classes"]) + 1


def test_the_script_and_the_library_the_module_uses_are_installed():
    files = {f["path"]: f for f in load("vars/main.yml")["__project_limits_files"]}
    assert files["/usr/local/sbin/smc-project"]["content"].startswith("#!/usr/bin/python3\n")
    assert "plugins/module_utils/project_limits.py" in files["/usr/local/lib/smc-project/project_limits.py"]["content"]
    assert files["/usr/local/sbin/smc-project"]["mode"] == "0755"
