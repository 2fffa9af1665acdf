"""A command runner for the collection's module_utils outside a module (the lab's tools, tests): the
``run_command(args, data=None) -> (rc, stdout, stderr)`` shape of ``AnsibleModule.run_command``."""
import subprocess


def run(args, data=None):
    p = subprocess.run(list(args), input=data, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr
