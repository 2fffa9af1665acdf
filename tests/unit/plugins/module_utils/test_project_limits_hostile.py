"""project_limits against hostile input: any id, size, class or limit is either accepted and renders only safe
names and known [Slice] lines, or refused with LimitsError naming the field; nothing else is ever raised."""
import re

from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
HOSTILE_IDS = st.one_of(
    st.sampled_from(["", ".", "..", "/", "a/b", "../etc", "-f", "--help", "a\n", "a\nb", "a\r", "a\0", "A", "a b",
                     "a.b", "a:b", "\u00e9", "a" * 201, "demo-a\n", " demo-a", "demo-a "]),
    TEXT, TEXT.map(lambda t: "a" + t), TEXT.map(lambda t: t + "\n"), TEXT.map(lambda t: "-" + t),
    st.integers(), st.none(), st.lists(st.integers(), max_size=2))
VALUES = st.one_of(TEXT, st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.floats(allow_nan=True), st.booleans(),
                   st.none(), st.sampled_from(["512M", "2G", "infinity", "50%", "0%", "-1", "1G\n", "1G\nCPUQuota=1%",
                                               "50%\n[Service]", "100", "1e9", "0x10", "\u0661\u0662"]))
SAFE_USER = re.compile(r"[a-z_][a-z0-9_]{0,31}")
SAFE_UNIT = re.compile(r"[a-z0-9_]+-[a-z0-9_]+\.slice")
PROPS = {p for _k, p in pl.PROPERTIES}


def ok_or_named(call, *fields):
    try:
        return call()
    except pl.LimitsError as exc:
        assert any(f in str(exc) for f in fields), str(exc)
        return None


@settings(max_examples=300, deadline=None)
@given(pid=HOSTILE_IDS)
def test_any_id_is_a_safe_user_and_slice_or_refused_naming_the_field(pid):
    spec = ok_or_named(lambda: pl.validate({"primary": [pid]}), "primary[0]")
    if spec is None:
        assert pl.check_id("primary[0]", pid)
        return
    (project,) = spec["projects"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,199}", pid) and ".." not in pid
    assert SAFE_USER.fullmatch(project["user"]) and SAFE_UNIT.fullmatch(project["unit"])
    assert "\n" not in pl.desired_units(spec, 1 << 30)[project["unit"]].split("Description=")[1][:-1].split("\n\n")[0]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(pl.LIMIT_KEYS), value=VALUES)
def test_any_limit_value_renders_only_its_own_property_or_is_refused(key, value):
    params = {"projects": [{"id": "a", "limits": {key: value}}], "io_devices": ["/dev/vdb"]}
    spec = ok_or_named(lambda: pl.validate(params), "projects[0].limits.%s" % key)
    if spec is None:
        return
    text = pl.desired_units(spec, 1 << 30)["smc_projects-pa.slice"]
    body = text.split("[Slice]\n", 1)[1]
    for line in body.splitlines():
        prop, _sep, val = line.partition("=")
        assert prop in PROPS and re.fullmatch(r"[A-Za-z0-9%./_ -]+", val), line
    assert text.count("[") == 2  # [Unit] and [Slice]: no section smuggled in


@settings(max_examples=200, deadline=None)
@given(value=VALUES, field=st.sampled_from(["memory", "cpu_weight", "io_weight", "cpu_quota", "tasks_max"]))
def test_any_reserve_value_is_used_or_refused_naming_it(value, field):
    spec = ok_or_named(lambda: pl.validate({"primary": ["a"], "reserve": {field: value}}), "reserve.%s" % field)
    if spec is not None:
        text = ok_or_named(lambda: pl.desired_units(spec, 1 << 30)["smc_projects.slice"], "reserve.memory")
        assert text is None or text.count("\n[") == 2


@settings(max_examples=200, deadline=None)
@given(name=HOSTILE_IDS, klass=HOSTILE_IDS)
def test_any_class_name_or_choice_is_known_or_refused(name, klass):
    params = {"classes": {name: {}} if isinstance(name, str) else {"default": {}}, "default_class": "default",
              "projects": [{"id": "a", "class": klass}]}
    ok_or_named(lambda: pl.validate(params), "classes", "projects[0].class", "default_class")


@settings(max_examples=200, deadline=None)
@given(value=HOSTILE_IDS, field=st.sampled_from(["parent", "user_prefix", "home_base", "uid_min", "uid_max"]))
def test_any_setting_is_used_or_refused_naming_it(value, field):
    spec = ok_or_named(lambda: pl.validate({"primary": ["a"], field: value}), field, "uid_min, uid_max")
    if spec is not None:
        (project,) = spec["projects"]
        assert SAFE_USER.fullmatch(project["user"]) and SAFE_UNIT.fullmatch(project["unit"])
        assert re.fullmatch(r"(/[A-Za-z0-9_.:+@=-]+)+", project["home"]) and "/../" not in project["home"] + "/"


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(TEXT, st.sampled_from(['{"projects": {"a": {"uid": 1, "gid": 1, "home": "/x", '
                                             '"slice": "s-a.slice\\n"}}}', '{"projects": {"a\\n": {}}}'])))
def test_any_config_text_parses_or_is_refused(text):
    ok_or_named(lambda: pl.parse_config(text, "cfg"), "cfg")
