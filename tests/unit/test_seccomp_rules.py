"""Rules: validation, the JSON form keyed by syscall name, and libseccomp's error messages."""

from __future__ import annotations

import errno
import json

import pytest

from hakurei import seccomp as sc
from hakurei.errors import HakureiError


@pytest.mark.parametrize("bad", [0, errno.EACCES, errno.EAFNOSUPPORT, -1, True, "1", None])
def test_errno_is_eperm_or_enosys_only(bad: object) -> None:
    with pytest.raises(sc.RuleError, match=r"errno must be EPERM \(1\) or ENOSYS \(38\)"):
        sc.Rule("setuid", bad)  # type: ignore[arg-type]


def test_rule_values_and_equality() -> None:
    a = sc.Rule("clone", sc.EPERM, sc.ArgCmp(0, sc.MASKED_EQ, 0x10000000, 0x10000000))
    b = sc.Rule("clone", 1, sc.ArgCmp(0, 7, 0x10000000, 0x10000000))
    assert a == b and hash(a) == hash(b)
    assert a != sc.Rule("clone", sc.EPERM)
    assert a != sc.Rule("clone", sc.ENOSYS, a.arg)
    assert repr(a) == "Rule('clone', EPERM, ArgCmp(0, MASKED_EQ, 0x10000000, 0x10000000))"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((6, sc.EQ, 0), "argument index must be 0..5"),
        ((-1, sc.EQ, 0), "argument index must be 0..5"),
        ((0, 0, 0), "invalid comparison operator 0"),
        ((0, 8, 0), "invalid comparison operator 8"),
        ((0, sc.EQ, -1), "datum a must be an integer"),
        ((0, sc.EQ, 1 << 64), "datum a must be an integer"),
        ((0, sc.MASKED_EQ, 1, 1 << 64), "datum b must be an integer"),
    ],
)
def test_argument_comparison_validation(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(sc.RuleError, match=message):
        sc.ArgCmp(*args)


def test_errors_are_hakurei_errors_and_value_errors() -> None:
    assert issubclass(sc.RuleError, HakureiError) and issubclass(sc.RuleError, ValueError)
    assert issubclass(sc.SyscallNameError, sc.RuleError)
    assert issubclass(sc.LibraryError, HakureiError)


# -- JSON ---------------------------------------------------------------------------


def test_json_text_is_go_std_form() -> None:
    rules = [
        sc.Rule("setuid", sc.EPERM),
        sc.Rule("clone", sc.EPERM, sc.ArgCmp(0, sc.MASKED_EQ, 0x10000000, 0x10000000)),
        sc.Rule("personality", sc.EPERM, sc.ArgCmp(0, sc.NE, 0)),
        sc.Rule("clone3", sc.ENOSYS),
    ]
    assert sc.rules_to_json(rules) == (
        "[\n"
        '  {"syscall":"setuid","errno":1},\n'
        '  {"syscall":"clone","errno":1,"arg":{"arg":0,"op":7,"a":268435456,"b":268435456}},\n'
        '  {"syscall":"personality","errno":1,"arg":{"arg":0,"op":1}},\n'
        '  {"syscall":"clone3","errno":38}\n'
        "]\n"
    )
    assert sc.rules_to_json([]) == "[]\n"


@pytest.mark.parametrize("presets", [sc.STRICT, sc.STRICT | sc.LINUX32, 0])
@pytest.mark.parametrize("flags", [0, sc.ALLOW_MULTIARCH])
def test_json_round_trip(presets: int, flags: int) -> None:
    rules = sc.preset(presets, flags)
    text = sc.rules_to_json(rules)
    assert len(json.loads(text)) == len(rules)
    assert sc.rules_from_json(text) == rules


def test_unknown_syscall_name_is_named() -> None:
    with pytest.raises(sc.SyscallNameError) as e:
        sc.rules_from_json(
            '[{"syscall":"setuid","errno":1},{"syscall":"nonexistent_syscall","errno":1}]'
        )
    assert str(e.value) == 'invalid syscall name "nonexistent_syscall"'
    assert e.value.name == "nonexistent_syscall"


def test_names_the_native_arch_lacks_are_valid() -> None:
    # chown32 exists only on 32-bit ABIs; libseccomp gives it a pseudo-number.
    assert sc.rules_from_json('[{"syscall":"chown32","errno":1}]') == [sc.Rule("chown32", 1)]
    assert sc.syscall_number("chown32") < 0
    assert sc.syscall_number("setuid") > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "must be a JSON array"),
        ("[", "invalid seccomp rules"),
        ("[1]", "rule 0: must be an object"),
        ('[{"errno":1}]', 'rule 0: "syscall" must be a syscall name'),
        ('[{"syscall":105,"errno":1}]', 'rule 0: "syscall" must be a syscall name'),
        ('[{"syscall":"setuid"}]', 'rule 0: missing "errno"'),
        ('[{"syscall":"setuid","errno":"1"}]', 'rule 0: "errno" must be an integer'),
        ('[{"syscall":"setuid","errno":13}]', "errno must be EPERM"),
        ('[{"syscall":"setuid","errno":1,"action":"kill"}]', 'unknown field "action"'),
        ('[{"syscall":"setuid","errno":1,"arg":[0]}]', '"arg" must be an object'),
        ('[{"syscall":"setuid","errno":1,"arg":{"op":4}}]', 'missing "arg"'),
        ('[{"syscall":"setuid","errno":1,"arg":{"arg":0}}]', 'missing "op"'),
        ('[{"syscall":"setuid","errno":1,"arg":{"arg":0,"op":4,"c":1}}]', 'unknown arg field "c"'),
        ('[{"syscall":"setuid","errno":1,"arg":{"arg":9,"op":4}}]', "argument index"),
    ],
)
def test_invalid_json_rules(text: str, message: str) -> None:
    with pytest.raises(sc.RuleError, match=message):
        sc.rules_from_json(text)


def test_missing_data_defaults_to_zero_as_go_omitempty() -> None:
    (rule,) = sc.rules_from_json('[{"syscall":"personality","errno":1,"arg":{"arg":0,"op":1}}]')
    assert rule.arg == sc.ArgCmp(0, sc.NE, 0, 0)


# -- libseccomp errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "prefix"),
    [
        (1, "seccomp_init failed"),
        (2, "seccomp_arch_add failed"),
        (3, "seccomp_arch_add failed (multiarch)"),
        (4, "internal libseccomp failure"),
        (5, "seccomp_rule_add failed"),
        (6, "seccomp_export_bpf failed"),
        (7, "seccomp_load failed"),
    ],
)
def test_library_error_prefixes(code: int, prefix: str) -> None:
    assert sc.LibraryError.from_code(code, errno.EINVAL).prefix == prefix


def test_library_error_messages_drop_the_missing_part() -> None:
    e = sc.LibraryError.from_code(5, errno.EINVAL, errno.EPERM)
    assert str(e) == "seccomp_rule_add failed: invalid argument (operation not permitted)"
    assert str(sc.LibraryError.from_code(2, errno.EINVAL)) == (
        "seccomp_arch_add failed: invalid argument"
    )
    assert str(sc.LibraryError.from_code(1, 0, errno.ENOMEM)) == (
        "seccomp_init failed: cannot allocate memory"
    )
    e = sc.LibraryError.from_code(4, errno.EFAULT)
    assert (e.seccomp, e.errno) == (errno.EFAULT, None)


def test_empty_rule_list_is_refused() -> None:
    with pytest.raises(sc.RuleError, match="invalid native rules slice"):
        sc.compile_bpf([], 0)
