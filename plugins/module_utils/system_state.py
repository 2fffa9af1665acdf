# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host must change to match a stated system state (no Ansible, no writes, no commands).

The modules ``system_state`` and ``system_info`` are thin around this: they read the host (files, the dpkg
status database, ``systemctl show``), call these functions, then act. Everything here either checks input,
parses what was read, or computes the changes; nothing writes and nothing runs a command, so one bad input
stops a call before the host is touched.
"""

import os
import re
import stat

__all__ = [
    "StateError", "SYSTEMD_DIRS", "check_path", "check_name", "validate", "installed_packages", "memory_bytes",
    "parse_units", "read_installed", "show_units", "unit_enabled", "unit_active", "render_block", "plan_directories", "plan_texts",
    "plan_kernel_modules", "module_parameter_values", "module_parameter_texts", "plan_runtime_parameters",
    "plan_units", "needs_daemon_reload",
]

PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?")
KMOD_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
PARAM_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
UNIT_RE = re.compile(r"[A-Za-z0-9_:\\][A-Za-z0-9_:.\\@-]{0,254}")
VALUE_RE = re.compile(r"[A-Za-z0-9_.,:+/=-]{1,4096}")
MODE_RE = re.compile(r"[0-7]{3,4}")
SYSTEMD_DIRS = ("/etc/systemd/system/", "/run/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/")
# UnitFileState values `systemctl is-enabled` (and ansible.builtin.systemd_service) count as enabled.
ENABLED_STATES = ("enabled", "static", "generated", "transient")
DISABLE_STATES = ("enabled", "enabled-runtime")
# ActiveState values ansible.builtin.systemd_service counts as running (nothing to start), and the ones
# `systemctl is-active` answers 0 for.
RUNNING_STATES = ("active", "activating", "reloading")
ACTIVE_STATES = ("active", "reloading")


class StateError(ValueError):
    """Bad input or a host state the call will not touch; the message names the option and the fix."""


# ----------------------------------------------------------------------------------------------- input
def check_path(where, path):
    """Error text for a path that is not absolute and normalized, else None."""
    if not isinstance(path, str) or not path:
        return "%s: %r is not a path; give an absolute path such as /etc/smc" % (where, path)
    if any(c in path for c in "\n\r\0"):
        return "%s: %r contains a newline or NUL; give a plain absolute path" % (where, path)
    if not path.startswith("/") or path == "/" or path.endswith("/"):
        return "%s: %r is not an absolute path to a file or directory (no trailing '/')" % (where, path)
    if os.path.normpath(path) != path or ".." in path.split("/"):
        return "%s: %r has '..', '.' or '//' in it; give the normalized path %r" % (
            where, path, os.path.normpath(path))
    return None


def check_name(where, name, pattern, what):
    if not isinstance(name, str) or not pattern.fullmatch(name) or ".." in name:
        return "%s: %r is not %s" % (where, name, what)
    return None


def parse_mode(where, mode, errors):
    """An octal mode given as text ("0644") or as the integer YAML makes of 0644; None is recorded as error."""
    if isinstance(mode, bool):
        mode = None
    if isinstance(mode, int) and 0 <= mode <= 0o7777:
        return mode
    if isinstance(mode, str) and MODE_RE.fullmatch(mode):
        return int(mode, 8)
    errors.append("%s: %r is not an octal mode; quote it, e.g. mode: \"0644\"" % (where, mode))
    return None


def _unique(where, values, errors):
    seen = set()
    for i, value in enumerate(values):
        if value in seen:
            errors.append("%s[%d]: %r is listed twice; list it once" % (where, i, value))
        seen.add(value)


def _validate_texts(p, errors):
    files = []
    for i, f in enumerate(p.get("files") or []):
        where = "files[%d]" % i
        errors.append(check_path(where + ".path", f.get("path")))
        if not isinstance(f.get("content"), str):
            errors.append("%s.content: give the file's text (a string)" % where)
        files.append(dict(path=f.get("path"), content=f.get("content") or "", secret=bool(f.get("secret")),
                          mode=parse_mode(where + ".mode", f.get("mode", "0644"), errors)))
    blocks = []
    for i, b in enumerate(p.get("blocks") or []):
        where = "blocks[%d]" % i
        errors.append(check_path(where + ".path", b.get("path")))
        marker = b.get("marker") or "# {mark} ANSIBLE MANAGED BLOCK"
        if "{mark}" not in marker or "\n" in marker or "\r" in marker:
            errors.append("%s.marker: %r must hold {mark} and no newline" % (where, marker))
        patterns = []
        for j, rx in enumerate(b.get("remove_lines") or []):
            try:
                patterns.append(re.compile(rx))
            except (re.error, TypeError) as exc:
                errors.append("%s.remove_lines[%d]: %r is not a regular expression (%s)" % (where, j, rx, exc))
                continue
            if patterns[-1].fullmatch(""):
                errors.append("%s.remove_lines[%d]: %r matches an empty line, so it could match every line; "
                              "make it name the line to remove" % (where, j, rx))
        blocks.append(dict(path=b.get("path"), marker=marker, block=b.get("block") or "", patterns=patterns,
                           create=bool(b.get("create"))))
    return files, blocks


def _validate_module_parameters(p, kmods, errors):
    out = []
    for i, m in enumerate(p.get("module_parameters") or []):
        where = "module_parameters[%d]" % i
        errors.append(check_name(where + ".module", m.get("module"), KMOD_RE, "a kernel module name"))
        values, percents = m.get("values") or {}, m.get("memory_percent") or {}
        for name in sorted(set(values) | set(percents)):
            errors.append(check_name("%s: parameter" % where, name, PARAM_RE, "a module parameter name"))
            if name in values and name in percents:
                errors.append("%s: %s is in both values and memory_percent; give one" % (where, name))
        for name, value in values.items():
            if isinstance(value, bool) or not VALUE_RE.fullmatch(str(value)):
                errors.append("%s.values.%s: %r is not a parameter value (letters, digits, _.,:+/=-)" % (
                    where, name, value))
        for name, pct in percents.items():
            if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
                errors.append("%s.memory_percent.%s: %r is not a whole percentage 0-100" % (where, name, pct))
        if m.get("conf") is not None:
            errors.append(check_path(where + ".conf", m["conf"]))
        comment = m.get("comment") or ""
        if "\n" in comment or "\r" in comment:
            errors.append("%s.comment: one line, no newline" % where)
        out.append(dict(module=m.get("module"), values={k: str(v) for k, v in values.items()}, percents=percents,
                        conf=m.get("conf"), comment=comment, runtime=m.get("runtime", True) is not False,
                        loading=m.get("module") in kmods))
    return out


def _validate_units(p, written, errors):
    units = []
    for i, u in enumerate(p.get("units") or []):
        where = "units[%d]" % i
        errors.append(check_name(where + ".name", u.get("name"), UNIT_RE,
                                 "a systemd unit name (letters, digits, _:.@\\-, not starting with '-' or '.')"))
        if u.get("state") not in (None, "started", "stopped"):
            errors.append("%s.state: %r is not started or stopped" % (where, u.get("state")))
        if u.get("enabled") not in (None, True, False):
            errors.append("%s.enabled: %r is not true or false" % (where, u.get("enabled")))
        for key in ("restart_on_change", "reload_on_change"):
            for j, path in enumerate(u.get(key) or []):
                if path not in written:
                    errors.append("%s.%s[%d]: %r is not a path this call writes; list it under files, blocks or "
                                  "module_parameters.conf" % (where, key, j, path))
        units.append(dict(name=u.get("name"), enabled=u.get("enabled"), state=u.get("state"),
                          restart=bool(u.get("restart")), restart_on_change=list(u.get("restart_on_change") or []),
                          reload_on_change=list(u.get("reload_on_change") or [])))
    _unique("units", [u["name"] for u in units], errors)
    return units


def validate(p):
    """Check every option of system_state and return it normalized; raise StateError naming each problem.

    ``p`` holds the module's options (plain data). Nothing on the host is looked at here."""
    errors = []
    packages = list(p.get("packages") or [])
    for i, name in enumerate(packages):
        errors.append(check_name("packages[%d]" % i, name, PACKAGE_RE,
                                 "a Debian package name (lower case, digits, +.-, optionally :arch)"))
    kmods = list(p.get("kernel_modules") or [])
    for i, name in enumerate(kmods):
        errors.append(check_name("kernel_modules[%d]" % i, name, KMOD_RE, "a kernel module name"))
    dirs = []
    for i, d in enumerate(p.get("directories") or []):
        errors.append(check_path("directories[%d].path" % i, d.get("path")))
        dirs.append(dict(path=d.get("path"), mode=parse_mode("directories[%d].mode" % i, d.get("mode", "0755"), errors)))
    files, blocks = _validate_texts(p, errors)
    mparams = _validate_module_parameters(p, kmods, errors)
    written = [f["path"] for f in files] + [b["path"] for b in blocks] + [m["conf"] for m in mparams if m["conf"]]
    _unique("packages", packages, errors)
    _unique("kernel_modules", kmods, errors)
    _unique("paths (directories, files, blocks, module_parameters.conf)", [d["path"] for d in dirs] + written, errors)
    units = _validate_units(p, written, errors)
    errors = [e for e in errors if e]
    if errors:
        raise StateError("; ".join(errors))
    return dict(packages=packages, update_cache=bool(p.get("update_cache")), kernel_modules=kmods,
                directories=dirs, files=files, blocks=blocks, module_parameters=mparams, units=units)


# ------------------------------------------------------------------------------------ what was read
def installed_packages(status_text):
    """Names (and name:arch) of the packages the dpkg status database lists as installed (held or not)."""
    out = set()
    for stanza in status_text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _sep, value = line.partition(":")
                fields[key] = value.strip()
        words = fields.get("Status", "").split()
        if "Package" in fields and len(words) == 3 and words[2] == "installed":
            out.add(fields["Package"])
            out.add("%s:%s" % (fields["Package"], fields.get("Architecture", "")))
    return out


def memory_bytes(meminfo_text):
    """MemTotal of /proc/meminfo in bytes."""
    found = re.search(r"^MemTotal:\s+(\d+) kB\s*$", meminfo_text, re.MULTILINE)
    if not found:
        raise StateError("/proc/meminfo has no MemTotal line; give module_parameters values in bytes instead")
    return int(found.group(1)) * 1024


def parse_units(show_text, names):
    """{name: {LoadState, ActiveState, UnitFileState}} from `systemctl show -p ... -- names...` output."""
    blocks = show_text.strip("\n").split("\n\n") if show_text.strip() else []
    if len(blocks) != len(names):
        raise StateError("systemctl show answered for %d units instead of %d (%s); nothing was changed"
                         % (len(blocks), len(names), ", ".join(names)))
    out = {}
    for name, block in zip(names, blocks):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        out[name] = {k: props.get(k, "") for k in ("LoadState", "ActiveState", "UnitFileState")}
    return out


def read_installed(status_path="/var/lib/dpkg/status"):
    """installed_packages() of the dpkg status file."""
    with open(status_path, encoding="utf-8", errors="replace") as f:
        return installed_packages(f.read())


def show_units(run, names):
    """parse_units() of one `systemctl show` for all ``names``; ``run(argv)`` returns a command's stdout."""
    if not names:
        return {}
    return parse_units(run(["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--"]
                           + list(names)), list(names))


def unit_enabled(props):
    """As `systemctl is-enabled` (and ansible.builtin.systemd_service): enabled, static, generated, transient."""
    return props.get("UnitFileState") in ENABLED_STATES


def unit_active(props):
    """As `systemctl is-active`: active or reloading (not activating)."""
    return props.get("ActiveState") in ACTIVE_STATES


# -------------------------------------------------------------------------------------------- planning
def render_block(original, marker, block, patterns=()):
    """The text after a managed block is written, as ansible.builtin.blockinfile (insertafter EOF) makes it.

    ``original``: the file's text (None when missing). Lines outside the block that a pattern matches
    whole (line ending aside) are dropped first. An empty ``block`` removes the block and its markers."""
    lines = (original or "").splitlines(True)
    begin, end = marker.replace("{mark}", "BEGIN") + "\n", marker.replace("{mark}", "END") + "\n"
    n0 = n1 = None
    for i, line in enumerate(lines):
        if line == begin:
            n0 = i
        if line == end:
            n1 = i
    inside = set(range(min(n0, n1), max(n0, n1) + 1)) if None not in (n0, n1) else set()
    keep = [(i in inside, line) for i, line in enumerate(lines)
            if i in inside or not any(p.fullmatch(line.rstrip("\r\n")) for p in patterns)]
    lines = [line for _in, line in keep]
    marked = [i for i, (flag, _line) in enumerate(keep) if flag]
    if marked:
        n0 = marked[0]
        del lines[marked[0]:marked[-1] + 1]
    else:
        n0 = len(lines)
    if block and not block.endswith("\n"):
        block += "\n"
    if n0 > 0 and not lines[n0 - 1].endswith("\n"):
        lines[n0 - 1] += "\n"
    lines[n0:n0] = [begin] + block.splitlines(True) + [end] if block else []
    return "".join(lines)


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise StateError("%s is not UTF-8 text; it is left as it is and nothing was changed" % path) from None


def plan_directories(dirs, written):
    """[(path, mode, exists)] of the directories to create or chmod; error for a non-directory in the way.

    ``written``: the file paths of the same call, whose directories must exist or be made by this call."""
    out, listed = [], set()
    for d in dirs:  # a listed directory and its parents (made with it) all exist after the call
        path = d["path"]
        while path != "/":
            listed.add(path)
            path = os.path.dirname(path)
    for d in dirs:
        try:
            st = os.stat(d["path"])
        except FileNotFoundError:
            out.append((d["path"], d["mode"], False))
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise StateError("directories: %s exists and is not a directory; move it away, nothing was changed"
                             % d["path"])
        if stat.S_IMODE(st.st_mode) != d["mode"]:
            out.append((d["path"], d["mode"], True))
    for path in written:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent) and parent not in listed:
            raise StateError("%s: its directory %s does not exist; list it under directories. Nothing was changed"
                             % (path, parent))
    return out


def plan_texts(files, blocks, extra=()):
    """[{path, before, after, mode, mode_before, secret, kind}] for every file or block whose text or mode differs.

    ``extra``: more whole-file entries (the module_parameters conf files). A path that is a directory, or a
    block file that is missing without create, stops the call."""
    out = []
    for f in list(files) + list(extra):
        out.append(_plan_one(f["path"], f["content"], f["mode"], f.get("secret", False), "file"))
    for b in blocks:
        before = _plan_before(b["path"])
        if before is None and not b["create"]:
            raise StateError("blocks: %s does not exist; set create: true to make it. Nothing was changed" % b["path"])
        after = render_block(before, b["marker"], b["block"], b["patterns"])
        mode = _mode_of(b["path"])
        out.append(dict(path=b["path"], before=before, after=after, mode=0o644 if mode is None else mode,
                        mode_before=mode, secret=False, kind="block"))
    return [t for t in out if t["before"] != t["after"] or t["mode"] != t["mode_before"]]


def _plan_before(path):
    if os.path.isdir(path):
        raise StateError("%s is a directory where a file belongs; nothing was changed" % path)
    return _read_text(path)


def _mode_of(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _plan_one(path, content, mode, secret, kind):
    before = _plan_before(path)
    return dict(path=path, before=before, after=content, mode=mode, mode_before=_mode_of(path), secret=secret,
                kind=kind)


def plan_kernel_modules(kmods, sys_module="/sys/module"):
    """Modules of ``kmods`` not loaded now (no /sys/module/<name>; '-' shows as '_' there)."""
    return [m for m in kmods if not os.path.isdir(os.path.join(sys_module, m.replace("-", "_")))]


def module_parameter_values(mparam, mem):
    """{parameter: value text} of one module_parameters entry, memory_percent ones from ``mem`` bytes."""
    values = dict(mparam["values"])
    if mparam["percents"]:
        if mem is None:
            raise StateError("module_parameters: memory_percent needs the host's memory size")
        values.update({k: str(mem * pct // 100) for k, pct in mparam["percents"].items()})
    return values


def module_parameter_texts(mparams, mem):
    """Whole-file entries (like files) of the modprobe.d files of module_parameters: comment, options line."""
    out = []
    for m in mparams:
        if not m["conf"]:
            continue
        values = module_parameter_values(m, mem)
        text = ("# %s\n" % m["comment"] if m["comment"] else "") + "options %s %s\n" % (
            m["module"], " ".join("%s=%s" % kv for kv in sorted(values.items())))
        out.append(dict(path=m["conf"], content=text, mode=0o644, secret=False))
    return out


def plan_runtime_parameters(mparams, mem, sys_module="/sys/module"):
    """[(module, parameter, before, after, sysfs path)] for the running values that differ.

    A module not loaded stops the call unless this call loads it (then ``before`` is None: known after)."""
    out = []
    for m in mparams:
        if not m["runtime"]:
            continue
        base = os.path.join(sys_module, m["module"].replace("-", "_"))
        loaded = os.path.isdir(base)
        if not loaded and not m["loading"]:
            raise StateError("module_parameters: kernel module %s is not loaded (no %s); list it under "
                             "kernel_modules or set runtime: false. Nothing was changed" % (m["module"], base))
        for name, value in sorted(module_parameter_values(m, mem).items()):
            path = os.path.join(base, "parameters", name)
            if not loaded:
                out.append((m["module"], name, None, value, path))
                continue
            current = _read_text(path)
            if current is None:
                raise StateError("module_parameters: %s has no parameter %s (no %s). Nothing was changed"
                                 % (m["module"], name, path))
            if not _same_value(current.strip(), value):
                out.append((m["module"], name, current.strip(), value, path))
    return out


def _same_value(current, want):
    if current == want:
        return True
    try:
        return int(current) == int(want)
    except ValueError:
        return False


def plan_units(units, state, written=(), packages_pending=False):
    """{name: [actions]} in order (enable, disable, start, stop, restart or reload) from ``state``
    (parse_units output).

    ``written``: paths this call changes (restart_on_change; reload_on_change: a running unit is reloaded
    when only those changed, restarted when a restart is due as well); a unit that is not found, or masked, and
    would have to be enabled or started stops the call, unless its file is among ``written`` or packages
    are still to be installed (they may bring it)."""
    out, changed = {}, set(written)
    for u in units:
        props = state.get(u["name"], {})
        actions = []
        if u["enabled"] is True and not unit_enabled(props):
            actions.append("enable")
        if u["enabled"] is False and props.get("UnitFileState") in DISABLE_STATES:
            actions.append("disable")
        if u["state"] == "started" and props.get("ActiveState") not in RUNNING_STATES:
            actions.append("start")
        if u["state"] == "stopped" and props.get("ActiveState") in RUNNING_STATES + ("deactivating",):
            actions.append("stop")
        wants_restart = u["restart"] or any(p in changed for p in u["restart_on_change"])
        wants_reload = any(p in changed for p in u.get("reload_on_change") or [])
        if wants_restart and u["state"] != "stopped" and "start" not in actions:
            actions.append("restart")
        elif wants_reload and u["state"] != "stopped" and "start" not in actions \
                and props.get("ActiveState") in RUNNING_STATES:
            actions.append("reload")
        if actions and set(actions) & {"enable", "start", "restart"}:
            _check_unit_usable(u["name"], props, written, packages_pending)
        if actions:
            out[u["name"]] = actions
    return out


def _check_unit_usable(name, props, written, packages_pending):
    if props.get("UnitFileState") in ("masked", "masked-runtime") or props.get("LoadState") == "masked":
        raise StateError("units: %s is masked; unmask it (systemctl unmask %s) or leave it out. Nothing was "
                         "changed" % (name, name))
    own_file = any(p.startswith(SYSTEMD_DIRS) and os.path.basename(p) == name for p in written)
    if props.get("LoadState") == "not-found" and not own_file and not packages_pending:
        raise StateError("units: %s is not installed (systemctl knows no such unit); install its package or "
                         "write its unit file in the same call. Nothing was changed" % name)


def needs_daemon_reload(written):
    """True when a changed path is a systemd unit directory's file."""
    return any(p.startswith(SYSTEMD_DIRS) for p in written)
