"""Params: what the caller gives, validated and resolved into the wire Setup."""

from __future__ import annotations

import os

import pytest

from hakurei import seccomp as sc
from hakurei.errors import OpError, StartError
from hakurei.ops import Ops
from hakurei.params import Params, overflow_id

OPS = Ops().bind("/usr", "/usr")


def test_string_matches_the_go_original() -> None:
    """Go TestContainerString."""
    p = Params(
        "/usr/bin/ldd",
        ["ldd", "/usr/bin/env"],
        ops=OPS,
        seccomp_rules=sc.preset(sc.EXT | sc.DENY_NS | sc.DENY_TTY, sc.ALLOW_MULTIARCH),
        seccomp_flags=sc.ALLOW_MULTIARCH,
        seccomp_presets=sc.STRICT,
    )
    assert str(p) == (
        'argv: ["ldd" "/usr/bin/env"], filter: true, rules: 65, flags: 0x1, presets: 0xf'
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"path": ""}, 'program path "" is empty'),
        ({"path": "/bin/true", "dir": "tmp"}, 'working directory "tmp" is not absolute'),
        ({"path": "/bin/true", "dir": ["/", "tmp"]}, 'working directory "tmp" is not absolute'),
        ({"path": "/bin/true", "ops": ["not an op"]}, "not an op"),
    ],
)
def test_bad_values_are_op_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(OpError, match=message):
        Params(**kw)  # type: ignore[arg-type]


def test_no_ops_is_a_start_error() -> None:
    with pytest.raises(StartError, match="invalid container"):
        Params("/bin/true").resolve(0)


def test_resolve_normalises_ids_delay_and_env() -> None:
    s = Params("/bin/true", ops=OPS, env={"A": "1"}, seccomp_disable=True).resolve(2)
    assert (s.uid, s.gid) == (overflow_id("uid"), overflow_id("gid"))
    assert (s.host_uid, s.host_gid, s.parent_pid) == (os.getuid(), os.getgid(), os.getpid())
    assert (s.adopt_wait_delay, s.env, s.args, s.files, s.bpf) == (
        5.0,
        ["A=1"],
        ["/bin/true"],
        2,
        None,
    )
    s = Params(
        "/bin/true", ops=OPS, uid=7, gid=8, adopt_wait_delay=-3, seccomp_disable=True
    ).resolve(0)
    assert (s.uid, s.gid, s.adopt_wait_delay) == (7, 8, 0.0)
    s = Params("/bin/true", ops=OPS, adopt_wait_delay=0, seccomp_disable=True).resolve(0)
    assert s.adopt_wait_delay == 0.0  # 0 is no wait, not the default (issue 11 §6)


def test_a_new_session_adds_deny_tty_to_the_compiled_presets() -> None:
    new = Params("/bin/true", ops=OPS).resolve(0)
    kept = Params("/bin/true", ops=OPS, retain_session=True).resolve(0)
    # Go: 12 common rules (+2 DenyTTY), emu modify_ldt without multiarch.
    assert (new.nrules, kept.nrules) == (15, 13)
