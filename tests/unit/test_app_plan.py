"""The app's container as the plan decides it from a config: ops, env, ids, seccomp, delays.

Pure functions of the config and the host environment given: each test reads
the ops (their tags and targets) the way init will apply them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hakurei import seccomp as sc
from hakurei.app.config import loads, template
from hakurei.app.plan import app_key, data_home, gpu_sys_paths, plan, seccomp_for
from hakurei.ops import Op
from hakurei.std import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    MS_RDONLY,
)

HOST = {"HOME": "/home/me", "TERM": "xterm", "LANG": "C.UTF-8", "DISPLAY": ":0", "SECRET": "x"}
BASE: list[dict[str, Any]] = [
    {"type": "bind", "src": "/usr"},
    {"type": "link", "dst": "/bin", "linkname": "usr/bin"},
]


def cfg(top: dict[str, Any] | None = None, **container: Any) -> Any:
    c: dict[str, Any] = {
        "shell": "/bin/sh",
        "home": "/home/app",
        "path": "/usr/bin/app",
        "filesystem": BASE,
    }
    c.update(container)
    return loads(json.dumps({**(top or {}), "container": c}))


def described(op: Op) -> tuple[Any, ...]:
    """An op as (tag, fields...): what init gets; a tmpfs as (tag, target, size, perm, fsname)."""
    if op.TAG == "tmpfs":
        return tuple(getattr(op, n) for n in ("TAG", "target", "size", "perm", "fsname"))
    return (op.TAG, *(getattr(op, name) for name, _ in op.FIELDS))


def tags(ops: list[Op]) -> list[tuple[Any, ...]]:
    return [described(op) for op in ops]


def find(ops: list[Op], tag: str) -> list[tuple[Any, ...]]:
    return [d for d in tags(ops) if d[0] == tag]


def index(ops: list[Op], *want: Any) -> int:
    for i, d in enumerate(tags(ops)):
        if d[: len(want)] == want:
            return i
    raise AssertionError(f"no op {want} in {tags(ops)}")


def test_the_app_runs_as_the_caller_in_its_home_with_the_config_argv_and_extra_args() -> None:
    p = plan(cfg(args=["app", "-x"]), HOST, 1000, 1000, extra_args=["file"])
    kw = p.container_kwargs()
    assert (kw["path"], kw["args"], kw["uid"], kw["gid"], kw["dir"]) == (
        "/usr/bin/app",
        ["app", "-x", "file"],
        1000,
        1000,
        "/home/app",
    )
    assert "tail" not in kw and kw["ops"] == list(p.ops)


def test_the_environment_is_cleared_then_term_lang_config_env_and_the_xdg_set() -> None:
    p = plan(cfg(env={"LANG": "de_DE.UTF-8", "PATH": "/usr/bin", "HOME": "/nope"}), HOST, 7, 8)
    assert p.env == {
        "TERM": "xterm",
        "LANG": "de_DE.UTF-8",  # the config's wins over the host's
        "PATH": "/usr/bin",
        "HOME": "/home/app",  # the launcher's win over the config's
        "USER": "chronos",
        "SHELL": "/bin/sh",
        "XDG_RUNTIME_DIR": "/run/user/7",
        "XDG_SESSION_CLASS": "user",
        "XDG_SESSION_TYPE": "tty",
    }


@pytest.mark.parametrize(
    ("enabled", "kind"),
    [({}, "tty"), ({"x11": True}, "x11"), ({"wayland": True, "x11": True}, "wayland")],
)
def test_session_type_follows_the_display_enabled(enabled: dict[str, bool], kind: str) -> None:
    assert plan(cfg({"enablements": enabled}), HOST, 7, 8).env["XDG_SESSION_TYPE"] == kind


def test_runtime_dir_is_a_private_0700_tmpfs_and_tmp_a_sticky_tmpfs() -> None:
    ops = plan(cfg(), HOST, 1000, 1000).ops
    assert ("tmpfs", "/run/user/1000", 0, 0o700) in [d[:4] for d in find(ops, "tmpfs")]
    assert ("tmpfs", "/tmp", 0, 0o1777) in [d[:4] for d in find(ops, "tmpfs")]
    assert index(ops, "tmpfs", "/run/user") < index(ops, "tmpfs", "/run/user/1000")


def test_shared_runtime_and_tmpdir_are_per_app_host_dirs_made_by_ensure() -> None:
    env = dict(HOST, TMPDIR="/var/tmp/me")
    p = plan(cfg({"id": "org.x.Y"}, share_runtime=True, share_tmpdir=True), env, 1000, 1000)
    binds = find(p.ops, "bind")
    flags = BIND_WRITABLE | BIND_ENSURE
    assert (
        "bind",
        "/var/tmp/me/hakurei-share.1000/org.x.Y/runtime",
        "/run/user/1000",
        flags,
    ) in binds
    assert ("bind", "/var/tmp/me/hakurei-share.1000/org.x.Y/tmpdir", "/tmp", flags) in binds


def test_passwd_and_group_name_the_configured_user_home_and_shell() -> None:
    p = plan(cfg(username="alice", shell="/bin/bash"), HOST, 1000, 100)
    placed = {d[1]: d[2] for d in find(p.ops, "place")}
    assert b"alice:x:1000:100:Hakurei:/home/app:/bin/bash\n" in placed["/etc/passwd"]
    assert b"alice:x:100:\n" in placed["/etc/group"]


def test_passwd_is_placed_after_an_auto_etc_and_not_over_a_bound_etc() -> None:
    ops = plan(
        cfg(filesystem=[*BASE, {"type": "bind", "src": "/etc/", "special": True}]), HOST, 1, 1
    ).ops
    assert index(ops, "autoetc") < index(ops, "place", "/etc/passwd")
    ops = plan(cfg(filesystem=[*BASE, {"type": "bind", "src": "/etc"}]), HOST, 1, 1).ops
    assert find(ops, "place") == []


def test_home_without_an_entry_is_a_private_persistent_dir_under_xdg_data_home() -> None:
    p = plan(cfg({"id": "org.x.Y"}), dict(HOST, XDG_DATA_HOME="/data"), 1, 1)
    assert ("bind", "/data/hakurei/org.x.Y", "/home/app", BIND_WRITABLE | BIND_ENSURE) in find(
        p.ops, "bind"
    )
    assert p.ensured == ["/data/hakurei/org.x.Y"]
    assert data_home({"HOME": "/home/me"}) == "/home/me/.local/share"
    assert data_home({"HOME": "/home/me", "XDG_DATA_HOME": "rel"}) == "/home/me/.local/share"


def test_home_given_by_an_entry_gets_no_second_bind() -> None:
    own = {"type": "bind", "src": "/srv/app", "dst": "/home/app", "write": True, "ensure": True}
    p = plan(cfg(filesystem=[*BASE, own]), HOST, 1, 1)
    assert [d for d in find(p.ops, "bind") if d[2] == "/home/app"] == [
        ("bind", "/srv/app", "/home/app", BIND_WRITABLE | BIND_ENSURE)
    ]
    assert p.ensured == []


def test_every_filesystem_entry_type_becomes_its_op_in_order() -> None:
    fs = [
        {"type": "bind", "src": "/", "special": True},
        {"type": "bind", "src": "/srv/a", "dst": "/a", "write": True},
        {"type": "bind", "src": "/srv/d", "dev": True, "optional": True},
        {"type": "ephemeral", "dst": "/scratch", "write": True, "size": 4096, "perm": 0o700},
        {"type": "ephemeral", "dst": "/empty"},
        {"type": "link", "dst": "/current", "linkname": "/srv/a", "dereference": True},
        {"type": "overlay", "dst": "/o", "lower": ["/l1", "/l2"]},
        {"type": "overlay", "dst": "/w", "lower": ["/l1"], "upper": "/u", "work": "/wk"},
    ]
    ops = plan(cfg(filesystem=fs), HOST, 1, 1).ops
    assert tags(ops)[0] == ("autoroot", "/", 0)  # the root first, before /proc
    order = [
        index(ops, "bind", "/srv/a", "/a", BIND_WRITABLE),
        index(ops, "bind", "/srv/d", "/srv/d", BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL),
        index(ops, "tmpfs", "/scratch", 4096, 0o700),
        index(ops, "tmpfs", "/empty", 0, 0o755, "readonly"),
        index(ops, "symlink", "/current", "/srv/a", True),
        index(ops, "overlay", "/o", ["/l1", "/l2"], None, None),
        index(ops, "overlay", "/w", ["/l1"], "/u", "/wk"),
    ]
    assert order == sorted(order)
    assert index(ops, "tmpfs", "/tmp") < order[0]  # entries can cover the launcher's mounts


def test_tail_makes_dev_then_root_read_only_and_is_kept_out_of_the_ops() -> None:
    p = plan(cfg(), HOST, 1, 1)
    assert tags(p.tail) == [("remount", "/dev", MS_RDONLY), ("remount", "/", MS_RDONLY)]
    assert find(p.ops, "remount") == []


def test_device_binds_the_whole_host_dev_writable() -> None:
    p = plan(cfg(device=True), HOST, 1, 1)
    assert ("bind", "/dev", "/dev", BIND_WRITABLE | BIND_DEVICE) in find(p.ops, "bind")
    assert find(p.ops, "dev") == [] and tags(p.tail) == [("remount", "/", MS_RDONLY)]


def test_a_display_brings_dev_dri_and_only_then() -> None:
    dri = ("bind", "/dev/dri", "/dev/dri", BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL)
    assert dri in find(plan(cfg({"enablements": {"x11": True}}), HOST, 1, 1).ops, "bind")
    assert dri not in find(plan(cfg(), HOST, 1, 1).ops, "bind")


def test_gpu_sys_paths_follow_each_dri_node_to_its_pci_device(tmp_path: Path) -> None:
    assert gpu_sys_paths(str(tmp_path / "none")) == []
    dri = tmp_path / "dri"
    dri.mkdir()
    (dri / "not-a-device").write_text("")
    assert gpu_sys_paths(str(dri)) == []  # no character device: no GPU
    # A character device (/dev/null, 1:3, stands in for card0) whose sysfs link
    # names a PCI device: that device's directory and /sys/dev/char are read.
    (dri / "card0").symlink_to("/dev/null")
    char = tmp_path / "char"
    char.mkdir()
    pci = "/sys/devices/pci0000:00/0000:00:99.0"
    (char / "1:3").symlink_to(f"{pci}/drm/card0")
    assert gpu_sys_paths(str(dri), str(char)) == [str(char), pci]


def test_the_state_store_is_covered_where_a_bind_would_show_it() -> None:
    fs = [
        {"type": "bind", "src": "/", "special": True},
        {"type": "bind", "src": "/home/me", "dst": "/mnt/me"},
    ]
    hide = ["/home/me/.cache/hakurei", "/tmp/hakurei.1"]
    ops = plan(cfg(filesystem=fs), HOST, 1, 1, hide=hide).ops
    covered = [d[1] for d in find(ops, "tmpfs") if d[4] == "readonly"]
    # via autoroot at its own path, via the bind at /mnt/me; /tmp is never bound by autoroot
    assert covered == ["/home/me/.cache/hakurei", "/mnt/me/.cache/hakurei"]


def test_seccomp_starts_from_everyday_and_each_flag_loosens_it() -> None:
    assert seccomp_for(cfg()) == (sc.EVERYDAY, 0)
    presets, flags = seccomp_for(cfg(devel=True, userns=True, tty=True, multiarch=True))
    assert presets == sc.EVERYDAY & ~(sc.DENY_DEVEL | sc.DENY_NS | sc.DENY_TTY)
    assert flags == sc.ALLOW_MULTIARCH
    assert plan(cfg(tty=True), HOST, 1, 1).retain_session


@pytest.mark.parametrize(
    ("wait_delay", "seconds", "forward"),
    [(0, 5.0, True), (2_000_000_000, 2.0, True), (-1, 0.0, False), (10**12, 30.0, True)],
)
def test_wait_delay_becomes_the_containers_grace_and_cancel_forwarding(
    wait_delay: int, seconds: float, forward: bool
) -> None:
    kw = plan(cfg(wait_delay=wait_delay), HOST, 1, 1).container_kwargs()
    assert (kw["wait_delay"], kw["forward_cancel"]) == (seconds, forward)


def test_network_and_hostname_follow_the_config() -> None:
    kw = plan(cfg(host_net=True, host_abstract=True, hostname="box"), HOST, 1, 1).container_kwargs()
    assert (kw["host_net"], kw["host_abstract"], kw["hostname"]) == (True, True, "box")


def test_app_key_is_the_id_else_the_identity_else_default() -> None:
    assert app_key(cfg({"id": "org.x.Y", "identity": 3})) == "org.x.Y"
    assert app_key(cfg({"identity": 3})) == "identity-3"
    assert app_key(cfg()) == "default"


def test_the_template_plans_and_its_ops_validate() -> None:
    p = plan(template(), HOST, 1000, 1000)
    for op in [*p.ops, *p.tail]:
        op.validate()
