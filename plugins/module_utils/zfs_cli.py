# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin helpers around the ``zpool`` and ``zfs`` command-line tools, shared by the modules.

``ZfsCli`` takes a ``run_command(args, data=None) -> (rc, out, err)`` callable (``AnsibleModule.run_command``
fits), always asks for script output (``-H``, ``-p``) and turns failures into ``ZfsError`` with the command
line. Value helpers (``to_bytes``, ``same_value``) are pure.
"""

import re
import shlex

__all__ = ["ZfsError", "ZfsCli", "parse_rows", "parse_import", "to_bytes", "same_value", "quote_script"]

_UNITS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?$", re.IGNORECASE)
_SIZE_PROPS = {"quota", "refquota", "reservation", "refreservation", "recordsize", "volsize", "special_small_blocks"}
_ALIASES = {("acltype", "posixacl"): "posix", ("acltype", "noacl"): "off", ("xattr", "on"): "dir"}


class ZfsError(Exception):
    """A zfs/zpool command failed."""

    def __init__(self, args, rc, err):
        self.cmd, self.rc, self.err = list(args), rc, (err or "").strip()
        super().__init__("'%s' failed (rc=%s): %s" % (" ".join(self.cmd), rc, self.err))


def to_bytes(value):
    """``'10G'`` -> 10737418240 (powers of 1024, like zfs); ``none``/``-`` -> 0; None if not a size."""
    text = str(value).strip()
    if text in ("none", "-", ""):
        return 0
    m = _SIZE_RE.match(text)
    if not m:
        return None
    return int(float(m.group(1)) * 1024 ** _UNITS[m.group(2).upper()])


def same_value(prop, want, have):
    """Whether a desired property value equals what ``zfs get -p`` reports."""
    want, have = str(want), str(have)
    if prop in _SIZE_PROPS:
        return to_bytes(want) == to_bytes(have)
    want = _ALIASES.get((prop, want), want)
    have = _ALIASES.get((prop, have), have)
    return want == have


def parse_rows(out, fields):
    """Rows of ``-H`` (tab-separated) output as dicts keyed by ``fields``."""
    rows = []
    for line in out.splitlines():
        if line:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def parse_import(out):
    """``zpool import`` (no pool named) -> list of {name, id, state} of importable pools."""
    pools, cur = [], None
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "pool":
            cur = {"name": value.strip(), "id": None, "state": None}
            pools.append(cur)
        elif cur is not None and key in ("id", "state"):
            cur[key] = value.strip()
    return pools


def quote_script(commands):
    """A POSIX sh script running each argv list in turn, without stopping at a failure: each failure
    prints ``FAILED <rc> <index>`` on stderr, and the script exits 1 when any failed."""
    lines = ["rc=0"]
    for i, argv in enumerate(commands):
        lines.append("%s || { r=$?; rc=1; echo \"FAILED $r %d\" >&2; }" % (" ".join(shlex.quote(a) for a in argv), i))
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


class ZfsCli:
    """Runs zpool/zfs; every method raises ZfsError on a non-zero exit unless told otherwise."""

    def __init__(self, run_command, zpool="zpool", zfs="zfs"):
        self._run = run_command
        self.zpool, self.zfs = zpool, zfs
        self.commands = 0

    def run(self, args, check=True, data=None):
        self.commands += 1
        if data is None:
            rc, out, err = self._run(list(args))
        else:
            rc, out, err = self._run(list(args), data=data)
        if check and rc != 0:
            raise ZfsError(args, rc, err or out)
        return rc, out, err

    def script(self, commands):
        """Run many argv lists through one ``sh``: one round trip instead of one per command.
        Returns [(argv, rc, stderr-of-the-script)] for the commands that failed."""
        commands = list(commands)
        if not commands:
            return []
        rc, out, err = self.run(["sh", "-s"], check=False, data=quote_script(commands))
        failed = []
        for line in (err or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "FAILED":
                failed.append((commands[int(parts[2])], int(parts[1]), err.strip()))
        if rc and not failed:
            failed.append((["sh", "-s"], rc, (err or out).strip()))
        return failed

    def pools(self):
        return self.run([self.zpool, "list", "-H", "-o", "name"])[1].split()

    def pool_status(self, pool):
        return self.run([self.zpool, "status", "-P", pool])[1]

    def pool_get(self, pool, props):
        out = self.run([self.zpool, "get", "-H", "-p", "-o", "property,value", ",".join(props), pool])[1]
        return {r["property"]: r["value"] for r in parse_rows(out, ("property", "value"))}

    def get(self, dataset, props):
        out = self.run([self.zfs, "get", "-H", "-p", "-o", "property,value", ",".join(props), dataset])[1]
        return {r["property"]: r["value"] for r in parse_rows(out, ("property", "value"))}

    def importable(self, dirs=()):
        args = [self.zpool, "import"]
        for d in dirs:
            args += ["-d", d]
        rc, out, err = self.run(args, check=False)
        return parse_import(out)

    def list(self, root, props, types="filesystem", depth=None):
        """``zfs list -H -p -o name,<props> -t <types> -r [-d depth] root`` as dicts; [] if root is missing."""
        fields = ["name"] + list(props)
        args = [self.zfs, "list", "-H", "-p", "-o", ",".join(fields), "-t", types, "-r"]
        if depth is not None:
            args += ["-d", str(depth)]
        rc, out, err = self.run(args + [root], check=False)
        if rc != 0:
            if "does not exist" in (err or ""):
                return []
            raise ZfsError(args + [root], rc, err)
        return parse_rows(out, fields)


class Lzc:
    """``libzfs_core`` through ctypes: creates many datasets in one process without one ``zfs create``
    process each (the kernel call ``zfs create`` itself makes). ``Lzc.load()`` returns None when the
    library is not there; callers then fall back to the CLI."""

    DATASET_TYPE_ZFS = 2

    def __init__(self, lib):
        self._lib = lib

    @classmethod
    def load(cls):
        import ctypes
        import ctypes.util
        names = [ctypes.util.find_library("zfs_core"), "libzfs_core.so.3", "libzfs_core.so.1"]
        for name in filter(None, names):
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError:
                continue
            if lib.libzfs_core_init() != 0:
                return None
            lib.lzc_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
            lib.lzc_create.restype = ctypes.c_int
            return cls(lib)
        return None

    def create(self, name):
        """Create filesystem ``name`` (not mounted, no local properties); returns 0 or an errno."""
        return self._lib.lzc_create(name.encode(), self.DATASET_TYPE_ZFS, None, None, 0)
