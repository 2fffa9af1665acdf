"""retention: malformed names of our prefix (year 0, month 13, huge numbers, trailing newline) are kept and reported
as unparsed, never raise, and the well-formed rest is still pruned."""
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import retention

NOW = 1767225600  # 2026-01-01T00:00:00Z
GOOD = [retention.snapshot_name("smc", NOW - 3600 * h) for h in range(1, 60)]
BAD = st.one_of(
    st.sampled_from(["smc_0000-01-01T00:00:00Z", "smc_0000-02-29T00:00:00Z", "smc_1969-12-31T23:59:59Z",
                     "smc_2025-13-01T00:00:00Z", "smc_2025-02-30T00:00:00Z", "smc_9999-99-99T99:99:99Z",
                     "smc_2025-01-01T00:00:00Z\n", "smc_", "smc_-1", "smc_2025-01-01T24:00:00Z"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=25).map(lambda t: "smc_" + t))


@settings(max_examples=200, deadline=None)
@given(bad=st.lists(BAD, min_size=1, max_size=5, unique=True), refs=st.sampled_from([0, None, "x", 2 ** 70]))
def test_malformed_names_are_skipped_reported_and_the_rest_pruned(bad, refs):
    snaps = [(n, 0) for n in GOOD] + [(n, 0) for n in bad] + [("smc_2025-06-01T00:00:00Z", refs)]
    result = retention.plan(snaps, {"hourly": 24}, NOW, prefix="smc")
    for name in bad:
        if retention.parse_name("smc", name) is None:
            assert "unparsed" in result.keep[name] and name not in result.destroy
    assert len([n for n in GOOD if n in result.destroy]) == len(GOOD) - 24
    assert "smc_2025-06-01T00:00:00Z" in result.keep or refs == 0


def test_year_zero_does_not_raise():
    assert retention.parse_name("smc", "smc_0000-01-01T00:00:00Z") is None
    assert retention.parse_name("smc", "smc_2025-01-01T00:00:00Z\n") is None
