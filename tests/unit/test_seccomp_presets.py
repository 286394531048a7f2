"""Presets → rules (reference §8.3), the socket allowlist and the compiled program."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import pytest

from hakurei import seccomp as sc
from hakurei.seccomp import ALLOW_BLUETOOTH, ALLOW_CAN, ALLOW_MULTIARCH, ENOSYS, EPERM
from hakurei.seccomp.compile import _build, _export

# The groups as the reference lists them.
COMMON = [
    "syslog", "uselib", "acct", "quotactl", "add_key", "keyctl", "request_key",
    "move_pages", "mbind", "get_mempolicy", "set_mempolicy", "migrate_pages",
]  # fmt: skip
NAMESPACE = [
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "clone",
    "clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr",
]  # fmt: skip
TTY = ["ioctl", "ioctl"]
DEVEL = ["perf_event_open", "personality", "ptrace"]
EMU = ["modify_ldt"]
COMMON_EXT = [
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
    "settimeofday", "delete_module", "finit_module", "init_module", "kexec_file_load",
    "kexec_load", "reboot", "swapoff", "swapon",
]  # fmt: skip
NAMESPACE_EXT = [
    "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
    "setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setuid", "setuid32",
]  # fmt: skip
EMU_EXT = ["subpage_prot", "switch_endian", "vm86", "vm86old"]
ENOSYS_NAMES = {"clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
                "mount_setattr", *EMU_EXT}  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    sc.cache_clear()
    yield
    sc.cache_clear()


def names(rules: list[sc.Rule]) -> list[str]:
    return [r.syscall for r in rules]


def test_counts_match_the_go_tests() -> None:
    assert len(sc.preset(sc.STRICT, 0)) == 73
    assert len(sc.preset(sc.EXT | sc.DENY_NS | sc.DENY_TTY, ALLOW_MULTIARCH)) == 65


def test_strict_is_every_group_in_reference_order() -> None:
    assert names(sc.preset(sc.STRICT, 0)) == [
        *COMMON, *NAMESPACE, *TTY, *DEVEL, *EMU, *COMMON_EXT, *NAMESPACE_EXT, *EMU_EXT
    ]  # fmt: skip


@pytest.mark.parametrize(("presets", "flags"), list(itertools.product(range(64), range(8))))
def test_every_combination_concatenates_the_right_groups(presets: int, flags: int) -> None:
    multi = flags & ALLOW_MULTIARCH
    want = list(COMMON)
    if presets & sc.DENY_NS:
        want += NAMESPACE
    if presets & sc.DENY_TTY:
        want += TTY
    if presets & sc.DENY_DEVEL:
        want += DEVEL
    if not multi:
        want += EMU
    if presets & sc.EXT:
        want += COMMON_EXT
        if presets & sc.DENY_NS and not presets & sc.ALLOW_ID_CALLS:
            want += NAMESPACE_EXT
        if not multi:
            want += EMU_EXT
    rules = sc.preset(presets, flags)
    assert names(rules) == want
    for r in rules:
        assert r.errno == (ENOSYS if r.syscall in ENOSYS_NAMES else EPERM), r


@pytest.mark.parametrize("flags", range(16))
def test_everyday_is_strict_without_exactly_the_id_change_group(flags: int) -> None:
    strict = sc.preset(sc.STRICT, flags)
    everyday = sc.preset(sc.EVERYDAY, flags)
    # The same rules in the same order, minus the reference's ns-ext group: no more, no less.
    assert everyday == [r for r in strict if r.syscall not in NAMESPACE_EXT]
    assert [r.syscall for r in strict if r not in everyday] == NAMESPACE_EXT
    assert len(everyday) == len(strict) - 21
    assert sc.EVERYDAY == sc.STRICT | sc.ALLOW_ID_CALLS


def test_allow_id_calls_changes_nothing_without_ext_and_deny_ns() -> None:
    for presets in range(32):
        if presets & (sc.EXT | sc.DENY_NS) != sc.EXT | sc.DENY_NS:
            assert sc.preset(presets | sc.ALLOW_ID_CALLS, 0) == sc.preset(presets, 0)


def test_argument_comparisons() -> None:
    by_name = {r.syscall: r for r in sc.preset(sc.STRICT, 0) if r.arg is not None}
    assert by_name["clone"].arg == sc.ArgCmp(0, sc.MASKED_EQ, 0x10000000, 0x10000000)
    assert by_name["personality"].arg == sc.ArgCmp(0, sc.NE, 0)
    ioctls = [r.arg for r in sc.preset(sc.DENY_TTY, 0) if r.syscall == "ioctl"]
    # Low 32 bits only (CVE-2019-10063).
    assert ioctls == [
        sc.ArgCmp(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x5412),
        sc.ArgCmp(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x541C),
    ]
    assert set(by_name) == {"clone", "ioctl", "personality"}


def test_linux32_changes_the_allowed_personality_only_with_deny_devel() -> None:
    rules = sc.preset(sc.STRICT | sc.LINUX32, 0)
    assert [r.arg for r in rules if r.syscall == "personality"] == [sc.ArgCmp(0, sc.NE, 8)]
    assert sc.preset(sc.LINUX32, 0) == sc.preset(0, 0)


def test_preset_returns_a_fresh_list() -> None:
    a = sc.preset(sc.STRICT, 0)
    a.clear()
    assert len(sc.preset(sc.STRICT, 0)) == 73


# -- presets by name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("strict", 0xF),
        ("ext,deny-ns,deny-tty,deny-devel,linux32", 0x1F),
        ("ext", 1),
        (" deny-ns , deny-tty ", 6),
        ("deny-devel,linux32", 24),
        ("strict,linux32", 0x1F),
        ("everyday", 0x2F),
        ("strict,allow-id-calls", 0x2F),
        ("everyday,linux32", 0x3F),
        ("allow-id-calls", 0x20),
        ("", 0),
    ],
)
def test_parse_presets(text: str, bits: int) -> None:
    assert sc.parse_presets(text) == bits


def test_parse_presets_names_the_unknown_one() -> None:
    with pytest.raises(ValueError, match='"deny-everything"'):
        sc.parse_presets("ext,deny-everything")


@pytest.mark.parametrize("bits", range(64))
def test_format_presets_round_trips(bits: int) -> None:
    assert sc.parse_presets(sc.format_presets(bits)) == bits


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        (sc.STRICT, "strict"),
        (sc.EVERYDAY, "everyday"),
        (sc.EVERYDAY | sc.LINUX32, "everyday,linux32"),
        (sc.EXT | sc.DENY_NS | sc.ALLOW_ID_CALLS, "ext,deny-ns,allow-id-calls"),
    ],
)
def test_format_presets_uses_the_widest_name(bits: int, text: str) -> None:
    assert sc.format_presets(bits) == text


# -- Go's implicit changes ---------------------------------------------------------------


def test_without_retain_session_deny_tty_is_added() -> None:
    presets, rules = sc.resolve(presets=sc.EXT, flags=0, rules=None, retain_session=False)
    assert presets == sc.EXT | sc.DENY_TTY
    assert rules == sc.preset(sc.EXT | sc.DENY_TTY, 0)
    presets, rules = sc.resolve(presets=sc.EXT, flags=0, rules=None, retain_session=True)
    assert (presets, rules) == (sc.EXT, sc.preset(sc.EXT, 0))


def test_custom_rules_replace_the_presets() -> None:
    custom = [sc.Rule("setuid", EPERM)]
    _, rules = sc.resolve(presets=sc.STRICT, flags=0, rules=custom, retain_session=False)
    assert rules == custom
    _, rules = sc.resolve(presets=sc.STRICT, flags=0, rules=[], retain_session=True)
    assert rules == sc.preset(sc.STRICT, 0)


def test_disable_skips_everything() -> None:
    assert sc.filter_for(presets=sc.STRICT, flags=0, rules=None, disable=True) == (None, 0)


# -- socket allowlist -------------------------------------------------------------------


def families(flags: int) -> tuple[list[int], int]:
    cmps = sc.socket_comparisons(flags)
    assert all(op == sc.EQ for op, _ in cmps[:-1]) and cmps[-1][0] == sc.GE
    return [f for _, f in cmps[:-1]], cmps[-1][1]


def test_socket_allowlist_gaps_and_tail() -> None:
    base = [3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]
    assert families(0) == (base, 17)
    assert families(ALLOW_CAN) == ([*base, *range(17, 29)], 30)
    assert families(ALLOW_BLUETOOTH) == ([*base, *range(17, 31)], 32)
    assert families(ALLOW_CAN | ALLOW_BLUETOOTH) == ([*base, *range(17, 29), 30], 32)
    assert families(ALLOW_MULTIARCH) == families(0)


# -- the compiled program ---------------------------------------------------------------

# SHA-512 of Go's exported BPF (container/seccomp/hash_amd64_test.go), produced by a
# libseccomp that emits the same code as 2.5.4.
GO_HASHES = {
    (0, 0): "95ec69d017733e072160e0da80fdebecdf27ae8166f5e2a731270c98ea2d2946"
    "cb5231029063668af215879155da21aca79b070e04c0ee9acdf58f55cfa815a5",
    (sc.EXT, 0): "dc7f2e1c5e829b79ebb7efc759150f54a83a75c8df6fee4dce5dadc4736c585d"
    "4deebfeb3c7969af3a077e90b77bb4741db05d90997c8659b95891206ac9952d",
    (sc.STRICT, 0): "e880298df2bd6751d0040fc21bc0ed4c00f95dc0d7ba506c244d8b8cf6866dba"
    "8ef4a33296f287b66cccc1d78e97026597f84cc7dec1573e148960fbd35cd735",
    (sc.DENY_NS | sc.DENY_TTY | sc.DENY_DEVEL, 0): "39871b93ffafc8b979fcedc0b0c37b9e"
    "03922f5b02748dc5c3c17c92527f6e022ede1f48bff59246ea452c0d1de54827808b1a6f84f32bbde1aa02ae30eedcfa",
    (sc.EXT | sc.DENY_DEVEL, 0): "c698b081ff957afe17a6d94374537d37f2a63f6f9dd75da7546542407a9e3247"
    "6ebda3312ba7785d7f618542bcfaf27ca27dcc2dddba852069d28bcfe8cad39a",
    (sc.EXT | sc.DENY_NS | sc.DENY_DEVEL, 0): "0b76007476c1c9e25dbf674c29fdf609a1656a70063e4932"
    "7654e1b5360ad3da06e1a3e32bf80e961c5516ad83d4b9e7e9bde876a93797e27627d2555c25858b",
}


def go_program(rules: list[sc.Rule], flags: int) -> bytes:
    """What Go compiles: the rules and the socket allowlist, without hakurei's appended rules."""
    return _export(_build(rules, flags, ()), pfc=False)


@pytest.mark.parametrize(("presets", "flags"), list(GO_HASHES))
def test_bpf_is_byte_identical_to_go(presets: int, flags: int) -> None:
    if sc.libseccomp_version() != "2.5.4":  # pragma: no cover - pinned to the CI image
        pytest.skip(f"hashes pinned for libseccomp 2.5.4, not {sc.libseccomp_version()}")
    bpf = go_program(sc.preset(presets, flags), flags)
    assert hashlib.sha512(bpf).hexdigest() == GO_HASHES[presets, flags]


# Not Go's: hakurei's own preset, pinned so that a change to it is seen.
HAKUREI_HASHES = {
    (sc.EVERYDAY, 0): "9712eb2dc100facdb2f4f1998ac92e2f1d93fedb7d2257e8ee4502a038c4c3b0"
    "9ea5a45978b864f9a22ef19ee341ebf8bc98671f0102969a6d9b69f0d2bb5136",
}


@pytest.mark.parametrize(("presets", "flags"), list(HAKUREI_HASHES))
def test_everyday_program_is_pinned(presets: int, flags: int) -> None:
    if sc.libseccomp_version() != "2.5.4":  # pragma: no cover - pinned to the CI image
        pytest.skip(f"hashes pinned for libseccomp 2.5.4, not {sc.libseccomp_version()}")
    bpf = go_program(sc.preset(presets, flags), flags)
    assert hashlib.sha512(bpf).hexdigest() == HAKUREI_HASHES[presets, flags]


@pytest.mark.parametrize(("presets", "flags"), list(GO_HASHES))
def test_the_program_is_go_s_plus_the_appended_rules(presets: int, flags: int) -> None:
    rules = sc.preset(presets, flags)
    bpf = sc.compile_bpf(rules, flags)
    assert bpf != go_program(rules, flags)
    assert bpf == go_program([*rules, *sc.appended_rules(flags)], flags)
    assert sc.compile_bpf(rules, flags | sc.ALLOW_IO_URING) == go_program(
        [*rules, sc.Rule("quotactl_fd", EPERM)], flags
    )


# -- appended to every filter ---------------------------------------------------------------

IO_URING = [
    sc.Rule("io_uring_setup", ENOSYS),
    sc.Rule("io_uring_enter", ENOSYS),
    sc.Rule("io_uring_register", ENOSYS),
]


@pytest.mark.parametrize("flags", range(16))
def test_appended_rules_refuse_io_uring_unless_allowed_and_quotactl_fd(flags: int) -> None:
    want = [sc.Rule("quotactl_fd", EPERM)]
    if not flags & sc.ALLOW_IO_URING:
        want += IO_URING
    assert sc.appended_rules(flags) == want


@pytest.mark.parametrize(
    ("presets", "flags"), list(itertools.product([*range(32), sc.EVERYDAY], range(16)))
)
def test_every_preset_combination_gets_the_appended_rules(presets: int, flags: int) -> None:
    # The presets themselves stay Go's: the appended rules are not in the rule list.
    names = {r.syscall for r in sc.preset(presets, flags)}
    assert names.isdisjoint({"quotactl_fd", "io_uring_setup", "io_uring_enter"})
    pfc = sc.export_pfc(sc.preset(presets, flags), flags)
    native = _sections(pfc)["x86_64"]
    assert 'syscall "quotactl_fd" (443)' in native
    for nr, name in ((425, "io_uring_setup"), (426, "io_uring_enter"), (427, "io_uring_register")):
        present = f'syscall "{name}" ({nr})' in native
        assert present == (not flags & sc.ALLOW_IO_URING), name
    if flags & ALLOW_MULTIARCH:  # the 32-bit ABI gets them too (same numbers on x86)
        assert 'syscall "quotactl_fd"' in _sections(pfc)["x86"]


def test_appended_rules_apply_to_custom_rules_and_cannot_be_undone_by_them() -> None:
    custom = [
        sc.Rule("io_uring_setup", EPERM),
        sc.Rule("io_uring_enter", EPERM, sc.ArgCmp(0, sc.EQ, 3)),
    ]
    pfc = _sections(sc.export_pfc(custom, 0))["x86_64"]
    # The first unconditional action stays; an unconditional rule overrides a conditional one.
    assert _block(pfc, "io_uring_setup") == ["if ($syscall == 425)", "action ERRNO(1);"]
    assert _block(pfc, "io_uring_enter") == ["if ($syscall == 426)", "action ERRNO(38);"]
    assert _block(pfc, "io_uring_register") == ["if ($syscall == 427)", "action ERRNO(38);"]
    assert _block(pfc, "quotactl_fd") == ["if ($syscall == 443)", "action ERRNO(1);"]


def _block(section: str, name: str) -> list[str]:
    """The pfc lines that decide syscall ``name``, stripped."""
    lines = section.splitlines()
    start = next(i for i, ln in enumerate(lines) if f'syscall "{name}"' in ln) + 1
    out = []
    for ln in lines[start:]:
        if ln.strip().startswith("#"):
            break
        out.append(ln.strip())
    return out


def _sections(pfc: str) -> dict[str, str]:
    """pfc text split per ``# filter for arch <name>`` section."""
    out: dict[str, str] = {}
    current = None
    for line in pfc.splitlines():
        if line.startswith("# filter for arch "):
            current = line.split()[4]
            out[current] = ""
        elif line.startswith("# invalid architecture action"):
            current = None
        elif current:
            out[current] += line + "\n"
    return out


def test_native_arch_only_without_multiarch_and_bad_arch_kills() -> None:
    pfc = sc.export_pfc(sc.preset(sc.STRICT, 0), 0)
    assert list(_sections(pfc)) == ["x86_64"]
    assert pfc.rstrip().splitlines()[-4:-3] == ["action KILL;"]


def test_multiarch_keeps_the_socket_allowlist_on_the_native_abi() -> None:
    # Go loses it: exact socket rules fail for x86 (socketcall) and take the native ABI along.
    pfc = sc.export_pfc(sc.preset(sc.STRICT, ALLOW_MULTIARCH), ALLOW_MULTIARCH)
    sections = _sections(pfc)
    assert sorted(sections) == ["x86", "x86_64"]
    assert 'syscall "socket"' in sections["x86_64"]
    assert "ERRNO(97)" in sections["x86_64"]
    assert 'syscall "socket"' not in sections["x86"]
    assert 'syscall "unshare"' in sections["x86"]


def test_raw_return_codes_and_errno_actions_in_program() -> None:
    pfc = sc.export_pfc([sc.Rule("clone3", ENOSYS), sc.Rule("setuid", EPERM)], 0)
    assert "ERRNO(38)" in pfc and "ERRNO(1)" in pfc


def test_filter_for_counts_rules_without_the_appended_rules() -> None:
    bpf, n = sc.filter_for(presets=sc.STRICT, flags=0, rules=None, retain_session=True)
    assert n == 73
    assert bpf is not None and len(bpf) % 8 == 0
    assert sc.filter_for(presets=0, flags=0, rules=[sc.Rule("setuid", EPERM)])[1] == 1
