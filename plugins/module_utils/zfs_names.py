# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS names and property assignments, checked before they reach a command line (pure).

Each ``*_error`` function returns None for a usable value, else one sentence naming the field (``where``)
and the rule, so a module can fail before it runs anything. The rules are OpenZFS's (zfs_namecheck.c), a
little stricter: no spaces, and nothing that could be read as an option (a leading ``-``).
"""

import re

__all__ = ["pool_name_error", "dataset_name_error", "property_error", "properties_error", "same_pool",
           "is_below"]

MAX_NAME = 255
MAX_VALUE = 4096
_POOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*\Z")
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.:-]+\Z")
_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")
_RESERVED = ("log", "cache", "special", "dedup")
_NATIVE_PROP_RE = re.compile(r"[a-z][a-z0-9_]*(@[A-Za-z0-9_.:-]+)?\Z")
_USER_PROP_RE = re.compile(r"[a-z0-9_.-]*:[a-z0-9_.:-]*\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def pool_name_error(name, where="name"):
    """Why ``name`` is not a usable pool name, or None."""
    if not isinstance(name, str) or not name:
        return "%s: %r is not a pool name: give a non-empty string such as 'tank'" % (where, name)
    if len(name) > MAX_NAME or not _POOL_RE.match(name):
        return ("%s: %r is not a valid pool name: start with a letter, then letters, digits, '_', '.', ':' or '-' "
                "(at most %d characters)" % (where, name, MAX_NAME))
    lower = name.lower()
    if lower.startswith(_RESERVED_PREFIXES) or lower in _RESERVED:
        return ("%s: %r is reserved by ZFS (names may not be or begin with mirror, raidz, draid or spare, nor be "
                "log, cache, special or dedup): choose another name" % (where, name))
    if re.match(r"c[0-9]", name):
        return "%s: %r may not begin with 'c' and a digit (reserved for device names): choose another name" % (
            where, name)
    return None


def dataset_name_error(name, where="name", min_depth=0):
    """Why ``name`` is not a usable dataset name ``pool[/child...]`` with at least ``min_depth`` children."""
    if not isinstance(name, str) or not name:
        return "%s: %r is not a dataset name: give a string such as 'tank/projects'" % (where, name)
    parts = name.split("/")
    err = pool_name_error(parts[0], where)
    if err:
        return err
    for part in parts[1:]:
        if part in (".", "..") or not _COMPONENT_RE.match(part) or part.startswith("-"):
            return ("%s: %r is not a valid dataset name: each part after the pool is letters, digits, '_', '.', ':' "
                    "or '-' (not '.', '..', empty or starting with '-')" % (where, name))
    if len(name) > MAX_NAME:
        return "%s: %r is longer than %d characters" % (where, name, MAX_NAME)
    if len(parts) - 1 < min_depth:
        return "%s: %s is a pool: use a dataset below it, e.g. %s/projects" % (where, name, parts[0])
    return None


def property_error(key, value, where="properties"):
    """Why ``key=value`` cannot be passed to ``zfs``/``zpool`` as one ``-o``/``set`` argument, or None."""
    if not isinstance(key, str) or len(key) > 256 or not (_NATIVE_PROP_RE.match(key) or _USER_PROP_RE.match(key)) \
            or key.startswith(("-", ":")):
        return ("%s: %r is not a property name: use a native property (lowercase, e.g. compression) or a user "
                "property with a ':' (e.g. smc:class)" % (where, key))
    if value is None or isinstance(value, (dict, list, bool)):
        return "%s.%s must be a plain value (quote on/off: 'on')" % (where, key)
    text = str(value)
    if _CONTROL_RE.search(text) or len(text) > MAX_VALUE:
        return ("%s.%s: the value must be at most %d characters without newlines or other control characters"
                % (where, key, MAX_VALUE))
    return None


def properties_error(props, where="properties"):
    """The first :func:`property_error` of a mapping, or None."""
    if not isinstance(props, dict):
        return "%s must be a mapping of property name to value" % where
    for key in sorted(props, key=str):
        err = property_error(key, props[key], where)
        if err:
            return err
    return None


def same_pool(a, b):
    """Whether datasets ``a`` and ``b`` are in the same pool."""
    return a.split("/")[0] == b.split("/")[0]


def is_below(name, ancestor):
    """Whether dataset ``name`` is ``ancestor`` itself or inside it."""
    return name == ancestor or name.startswith(ancestor + "/")
