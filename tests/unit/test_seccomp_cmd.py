"""``hakurei seccomp``: what it prints is what a container with the same options gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei import seccomp as sc
from hakurei.cli.seccomp import main


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    sc.cache_clear()
    yield
    sc.cache_clear()


def test_json_is_the_rule_list_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--format", "json"]) == 0
    text = capsys.readouterr().out
    assert text == sc.rules_to_json(sc.preset(sc.EVERYDAY, 0))
    assert [o["syscall"] for o in json.loads(text)][:3] == ["syslog", "uselib", "acct"]


def test_json_adds_deny_tty_unless_the_session_is_retained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--presets", "ext", "--multiarch", "--format", "json"]) == 0
    assert sc.rules_from_json(capsys.readouterr().out) == sc.preset(
        sc.EXT | sc.DENY_TTY, sc.ALLOW_MULTIARCH
    )
    assert main(["--presets", "ext", "--retain-session", "--format", "json"]) == 0
    assert sc.rules_from_json(capsys.readouterr().out) == sc.preset(sc.EXT, 0)


def test_bpf_is_the_program_a_container_loads(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["--presets", "strict", "--allow-can", "--allow-bluetooth", "--format", "bpf"]) == 0
    out = capsysbinary.readouterr().out
    want, _ = sc.filter_for(presets=sc.STRICT, flags=sc.ALLOW_CAN | sc.ALLOW_BLUETOOTH, rules=None)
    assert out == want


@pytest.mark.parametrize("allow", [False, True])
def test_allow_io_uring_is_the_program_a_container_loads(
    allow: bool, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["--format", "bpf", *(["--allow-io-uring"] if allow else [])]) == 0
    flags = sc.ALLOW_IO_URING if allow else 0
    want, _ = sc.filter_for(presets=sc.EVERYDAY, flags=flags, rules=None)
    assert capsysbinary.readouterr().out == want
    assert main(["--allow-io-uring"] if allow else []) == 0
    pfc = capsysbinary.readouterr().out.decode()
    assert ('syscall "io_uring_setup"' in pfc) is not allow
    assert 'syscall "quotactl_fd"' in pfc


def test_without_presets_it_prints_what_hakurei_exec_loads_by_default(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    from hakurei.cli import exec_setup

    setup = exec_setup(["--", "/bin/true"])
    assert setup is not None and setup.bpf is not None
    assert main(["--format", "bpf"]) == 0
    assert capsysbinary.readouterr().out == setup.bpf
    # everyday: strict without the id-change calls, which `--presets strict` keeps.
    assert main(["--format", "json"]) == 0
    default = {o["syscall"] for o in json.loads(capsysbinary.readouterr().out)}
    assert main(["--presets", "strict", "--format", "json"]) == 0
    strict = {o["syscall"] for o in json.loads(capsysbinary.readouterr().out)}
    assert strict - default == {
        "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
        "setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32",
        "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
        "setuid", "setuid32",
    }  # fmt: skip
    assert default < strict


def test_pfc_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--multiarch"]) == 0
    pfc = capsys.readouterr().out
    assert "# filter for arch x86_64" in pfc
    assert "# filter for arch x86 " in pfc
    assert 'syscall "unshare"' in pfc


def test_rules_file_replaces_the_presets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "rules.json"
    f.write_text('[{"syscall":"setuid","errno":1}]')
    assert main(["--rules", str(f), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"syscall": "setuid", "errno": 1}]
    assert main(["--rules", str(f)]) == 0
    pfc = capsys.readouterr().out
    assert 'syscall "setuid"' in pfc and 'syscall "unshare"' not in pfc


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``hakurei seccomp ARGS`` through the console script's main: (status, stderr)."""
    from hakurei.cli import main as hakurei_main

    status = hakurei_main(["seccomp", *args])
    return status, capfd.readouterr().err


def test_unknown_syscall_in_rules_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rules.json"
    f.write_text('[{"syscall":"no_such_call","errno":1}]')
    status, err = run_cli(capfd, "--seccomp-rules", str(f), "--format", "json")
    assert (status, err) == (
        125,
        f'hakurei: --seccomp-rules "{f}": invalid syscall name "no_such_call"\n',
    )


def test_missing_rules_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(capfd, "--seccomp-rules", str(tmp_path / "nope.json"))
    assert status == 125 and err.count("\n") == 1
    assert "nope.json: no such file or directory" in err


@pytest.mark.parametrize(
    "args",
    [
        ("--seccomp", "ext,bogus"),
        ("--format", "xml"),
        ("--format",),
        ("--nope",),
        ("--bind", "/", "/"),
        ("stray",),
    ],
)
def test_usage_errors_are_one_line_and_125_as_for_exec(
    args: tuple[str, ...], capfd: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli(capfd, *args)
    assert status == 125 and err.startswith("hakurei: ") and err.count("\n") == 1, err


def test_takes_exactly_the_seccomp_options_of_exec() -> None:
    from hakurei.cli import exec as exec_cmd
    from hakurei.cli import seccomp as seccomp_cmd
    from hakurei.cli._table import Table

    def seccomp_names(table: Table) -> set[str]:
        return {n for o in table.options if o.group == seccomp_cmd.SECCOMP for n in o.names}

    assert seccomp_names(exec_cmd.TABLE) == seccomp_names(seccomp_cmd.TABLE) - {"--retain-session"}
    assert "--retain-session" in exec_cmd.TABLE.by_name


def test_no_seccomp_prints_an_empty_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-seccomp", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"
