"""``hakurei bwrap``'s parser: bubblewrap's rules, and hostile command lines as one clear error.

Parsing and building the record start nothing, so these run in-process. Options
that take an fd are left out of the fuzzing: they read and close fds of this
very process (the integration tests drive them with real ones).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hakurei.cli import bwrap
from hakurei.errors import HakureiError

FD_OPTIONS = {name for name, (metavars, _, _) in bwrap.OPTIONS.items() if "FD" in metavars}
FUZZED = sorted(set(bwrap.OPTIONS) - FD_OPTIONS)


def parsed(*argv: str) -> bwrap.Spec:
    spec = bwrap.Spec("bwrap")
    assert bwrap.parse(spec, list(argv))
    return spec


def refused(*argv: str) -> str:
    spec = bwrap.Spec("bwrap")
    with pytest.raises(bwrap.BwrapError) as e:
        if bwrap.parse(spec, list(argv)):
            bwrap.setup_of(spec)
    return str(e.value)


def test_options_stop_at_the_separator_or_the_first_non_option() -> None:
    spec = parsed("--bind", "/", "/", "--", "--tmpfs", "x")
    assert (spec.program, spec.args) == ("--tmpfs", ["x"])
    spec = parsed("--bind", "/", "/", "true", "--tmpfs", "x")
    assert (spec.program, spec.args) == ("true", ["--tmpfs", "x"])


def test_overlay_sources_are_listed_top_first_as_overlayfs_wants() -> None:
    spec = parsed("--overlay-src", "/a", "--overlay-src", "/b", "--ro-overlay", "/x", "true")
    (op,) = spec.ops
    assert op.lower == ["/b", "/a"]  # type: ignore[attr-defined]


def test_sizes_are_read_as_strtoull_base_0_does() -> None:
    for text, value in (("4096", 4096), ("0x1000", 4096), ("010000", 4096)):
        spec = parsed("--size", text, "--tmpfs", "/t", "true")
        assert spec.ops[0].size == value  # type: ignore[attr-defined]
    for text in ("", "0", "-1", " 1", "1k", "0x", str(2**64)):
        assert refused("--size", text, "--tmpfs", "/t", "true").startswith("--size ")


def test_combination_rules_are_checked_once_the_line_is_read() -> None:
    assert refused("--hostname", "h", "true") == "Specifying --hostname requires --unshare-uts"
    assert refused("--as-pid-1", "true") == "Specifying --as-pid-1 requires --unshare-pid"
    assert refused("--disable-userns", "true") == "--disable-userns requires --unshare-user"
    assert refused("--bind", "/", "/") == "No command specified"
    assert refused("--perms", "0755", "true").startswith("--perms must be followed")


def test_relative_paths_are_the_callers_for_sources_and_the_roots_for_destinations() -> None:
    spec = parsed("--bind", "src", "dst", "true")
    (op,) = spec.ops
    assert op.source == os.path.join(os.getcwd(), "src")  # type: ignore[attr-defined]
    assert op.target == "/dst"  # type: ignore[attr-defined]


words = st.one_of(
    st.sampled_from(FUZZED),
    st.sampled_from(["/", "/tmp", "rel", "", "-", "--", "0755", "0x10", "ALL", "true", "/bin/sh"]),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(words, max_size=12))
def test_any_command_line_is_a_record_or_one_bwrap_error(argv: list[str]) -> None:
    spec = bwrap.Spec("bwrap")
    try:
        if bwrap.parse(spec, argv):
            bwrap.setup_of(spec)
    except HakureiError as e:
        assert "\n" not in str(e) and str(e)


def test_a_modifier_must_be_used_by_the_very_next_option() -> None:
    msg = refused("--perms", "0700", "--setenv", "A", "B", "--dir", "/x", "true")
    assert msg == "--perms must be followed by an option that creates a file"
    msg = refused("--size", "4096", "--chdir", "/", "--tmpfs", "/x", "true")
    assert msg == "--size must be followed by --tmpfs"
    parsed("--size", "4096", "--perms", "0700", "--tmpfs", "/x", "true")
