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
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?\Z", re.IGNORECASE)
_SIZE_PROPS = {"quota", "refquota", "reservation", "refreservation", "recordsize", "volsize", "special_small_blocks"}
_ALIASES = {("acltype", "posixacl"): "posix", ("acltype", "noacl"): "off", ("xattr", "sa"): "on"}


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
        key, _sep, value = line.strip().partition(": ")
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
    """``libzfs_core`` through ctypes: creates many datasets from one process, several at a time (threads
    share transaction groups, where one ``zfs create`` process each would wait for its own). Properties
    that the kernel takes without libzfs' translation (user properties, sizes, on/off flags) are set at
    creation; ``split_props`` says which. ``Lzc.load()`` returns None when the libraries are missing."""

    DATASET_TYPE_ZFS = 2
    SIZE_PROPS = ("quota", "refquota", "reservation", "refreservation")
    FLAG_PROPS = ("readonly", "atime", "exec", "setuid", "devices")

    def __init__(self, core, nvpair):
        self._core, self._nv = core, nvpair

    @classmethod
    def load(cls):
        import ctypes
        import ctypes.util

        def lib(stem, versions):
            for name in filter(None, [ctypes.util.find_library(stem)] + ["lib%s.so.%d" % (stem, v) for v in versions]):
                try:
                    return ctypes.CDLL(name)
                except OSError:
                    continue
            return None

        core, nv = lib("zfs_core", (3, 1)), lib("nvpair", (3, 1))
        if core is None or nv is None or core.libzfs_core_init() != 0:
            return None
        vp = ctypes.c_void_p
        core.lzc_create.argtypes = [ctypes.c_char_p, ctypes.c_int, vp, vp, ctypes.c_uint]
        nv.nvlist_alloc.argtypes = [ctypes.POINTER(vp), ctypes.c_uint, ctypes.c_int]
        nv.nvlist_add_string.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
        nv.nvlist_add_uint64.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint64]
        nv.nvlist_free.argtypes = [vp]
        return cls(core, nv)

    @classmethod
    def split_props(cls, props):
        """(typed props lzc_create can take, the rest for ``zfs set``)."""
        typed, rest = {}, {}
        for k, v in props.items():
            if ":" in k:
                typed[k] = str(v)
            elif k in cls.SIZE_PROPS and to_bytes(v) is not None:
                typed[k] = to_bytes(v)
            elif k in cls.FLAG_PROPS and str(v) in ("on", "off"):
                typed[k] = 1 if str(v) == "on" else 0
            else:
                rest[k] = v
        return typed, rest

    def create(self, name, typed=None):
        """Create filesystem ``name`` (not mounted) with ``typed`` properties; returns 0 or an errno."""
        import ctypes
        nvl = ctypes.c_void_p()
        if self._nv.nvlist_alloc(ctypes.byref(nvl), 1, 0) != 0:
            return 12
        try:
            for k, v in (typed or {}).items():
                add = self._nv.nvlist_add_uint64 if isinstance(v, int) else self._nv.nvlist_add_string
                add(nvl, k.encode(), v if isinstance(v, int) else v.encode())
            return self._core.lzc_create(name.encode(), self.DATASET_TYPE_ZFS, nvl, None, 0)
        finally:
            self._nv.nvlist_free(nvl)

    def create_many(self, items, threads=16):
        """Create {name: typed props} concurrently, parents before children; returns {name: errno} of failures."""
        from concurrent.futures import ThreadPoolExecutor
        errors = {}
        by_depth = {}
        for name in items:
            by_depth.setdefault(name.count("/"), []).append(name)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for depth in sorted(by_depth):
                names = sorted(by_depth[depth])
                for name, rc in zip(names, pool.map(lambda n: self.create(n, items[n]), names)):
                    if rc:
                        errors[name] = rc
        return errors
