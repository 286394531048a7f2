"""The launcher's state store and undo journal, on a real filesystem in a temp dir.

Liveness is an flock, so these tests hold and drop real locks in this
process (a second open file description conflicts even in the same process).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from hakurei.app import journal
from hakurei.app.store import Store, StoreError, default_path

CALLS: list[str] = []


def _note_revert(rec: dict[str, Any], ctx: journal.Context) -> None:
    if rec["name"].startswith("fail"):
        raise OSError(5, "Input/output error")
    CALLS.append(rec["name"])


if "test_note" not in journal.KINDS:
    journal.register(journal.Kind("test_note", {"name": str}, lambda r, c: None, _note_revert))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    CALLS.clear()
    return Store(str(tmp_path / "hakurei"), host_roots=[str(tmp_path)])


def test_store_directory_is_created_private(tmp_path: Path) -> None:
    Store(str(tmp_path / "s"))
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700


def test_store_directory_with_open_mode_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o755)
    with pytest.raises(StoreError, match="mode 0755, not 0700"):
        Store(str(tmp_path / "s"))


def test_store_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "s").symlink_to(tmp_path / "real")
    with pytest.raises(StoreError, match="not a directory") as e:
        Store(str(tmp_path / "s"))
    assert "\n" not in str(e.value)


@pytest.mark.root
def test_store_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o700)
    os.chown(tmp_path / "s", 65534, 65534)
    with pytest.raises(StoreError, match="belongs to uid 65534, not to us"):
        Store(str(tmp_path / "s"))


def test_store_lives_under_xdg_runtime_dir_else_a_private_dir_in_tmpdir(tmp_path: Path) -> None:
    uid = os.geteuid()
    assert default_path({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"{tmp_path}/hakurei"
    assert default_path({"TMPDIR": str(tmp_path)}) == f"{tmp_path}/hakurei.{uid}"
    missing = {"XDG_RUNTIME_DIR": str(tmp_path / "gone"), "TMPDIR": "/var/tmp"}
    assert default_path(missing) == f"/var/tmp/hakurei.{uid}"
    assert default_path({"XDG_RUNTIME_DIR": "relative"}) == f"/tmp/hakurei.{uid}"


def test_instance_files_are_private_and_entry_is_versioned(store: Store) -> None:
    inst = store.create()
    inst.write_entry({"app": "x"})
    inst.write_entry({"app": "y"})  # rewritten atomically: no tmp file left
    d = Path(inst.path)
    assert sorted(os.listdir(d)) == ["entry.json", "journal", "lock"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in os.listdir(d):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    entry = json.loads((d / "entry.json").read_text())
    assert entry["version"] == 1 and entry["id"] == inst.id and entry["info"] == {"app": "y"}
    assert len(inst.id) == 32 and int(inst.id, 16) >= 0
    inst.revert()


def test_ps_lists_an_instance_only_while_its_lock_is_held(store: Store) -> None:
    inst = store.create()
    inst.write_entry({"app": "x"})
    assert [e["id"] for e in store.live()] == [inst.id]
    inst.close()  # as if the monitor died: the kernel drops its lock
    assert store.live() == []
    assert os.path.isdir(inst.path)
    assert store.gc() == []
    assert not os.path.exists(inst.path)


def test_lock_held_by_another_process_keeps_the_instance_alive(store: Store) -> None:
    code = (
        "import sys; from hakurei.app.store import Store\n"
        "i = Store(sys.argv[1]).create(); i.write_entry({})\n"
        "print(i.id, flush=True); sys.stdin.read()\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, store.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert p.stdout is not None and p.stdin is not None
    id = p.stdout.readline().decode().strip()
    assert [e["id"] for e in store.live()] == [id]
    assert store.gc() == []
    assert os.path.isdir(os.path.join(store.path, id))
    p.kill()
    p.wait()
    assert store.live() == []
    assert store.gc() == []
    assert os.listdir(store.path) == ["lock"]


def test_gc_never_touches_a_live_instance(store: Store, tmp_path: Path) -> None:
    inst = store.create()
    inst.journal.record("remove", path="made")
    (Path(inst.path) / "made").write_text("x")
    inst.journal.record("test_note", name="live")
    assert store.gc() == []
    assert CALLS == []
    assert (Path(inst.path) / "made").exists()
    inst.revert()
    assert CALLS == ["live"]
    assert os.listdir(store.path) == ["lock"]


def test_journal_reverts_in_reverse_order(store: Store) -> None:
    inst = store.create()
    for name in ("a", "b", "c"):
        inst.journal.record("test_note", name=name)
    assert inst.revert() == []
    assert CALLS == ["c", "b", "a"]


def test_journal_continues_past_a_failed_step_and_reports_it(store: Store) -> None:
    inst = store.create()
    for name in ("a", "fail-b", "c"):
        inst.journal.record("test_note", name=name)
    errors = inst.revert()
    assert CALLS == ["c", "a"]
    assert len(errors) == 1 and "Input/output error" in errors[0]
    assert os.listdir(store.path) == ["lock"]


def test_undoing_what_was_never_done_is_success(store: Store, tmp_path: Path) -> None:
    inst = store.create()
    inst.journal.record("remove", path="never/made")
    inst.journal.record("remove_host", path=f"{tmp_path}/sock-{inst.id}")
    child = subprocess.Popen(["true"])
    child.wait()
    inst.journal.record("kill", pid=child.pid, starttime=0)
    assert inst.revert() == []


def test_torn_last_line_is_ignored_and_a_garbled_line_is_skipped(store: Store) -> None:
    inst = store.create()
    inst.journal.record("test_note", name="a")
    os.write(inst.journal.fd, b"{not json\n")
    inst.journal.record("test_note", name="b")
    os.write(inst.journal.fd, b'{"kind": "test_note", "name": "tor')  # crash mid-append
    inst.close()
    errors = store.gc()
    assert CALLS == ["b", "a"]
    assert len(errors) == 1 and "line 3: not JSON" in errors[0]
    assert os.listdir(store.path) == ["lock"]


def test_journal_of_another_version_is_not_replayed(store: Store) -> None:
    inst = store.create()
    inst.journal.record("test_note", name="a")
    inst.close()
    p = Path(store.path) / inst.id / "journal"
    p.write_text(p.read_text().replace('"version":1', '"version":2'))
    errors = store.gc()
    assert CALLS == []
    assert len(errors) == 1 and "not version 1" in errors[0]


def test_gc_removes_symlinks_without_following_them(store: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    inst = store.create()
    d = Path(inst.path)
    (d / "link").symlink_to(victim)
    (d / "sub").mkdir()
    (d / "sub" / "link").symlink_to(victim / "keep")
    inst.journal.record("remove", path="link/keep")  # through a symlink: refused
    inst.close()
    errors = store.gc()
    assert len(errors) == 1 and "not a directory" in errors[0]
    assert (victim / "keep").read_text() == "x"
    assert os.listdir(store.path) == ["lock"]


@pytest.mark.parametrize(
    "path",
    ["../escape", "/abs", "a/../../escape", ""],
)
def test_remove_records_cannot_leave_the_instance_directory(store: Store, path: str) -> None:
    (Path(store.path) / "escape").write_text("x")
    inst = store.create()
    inst.journal.record("remove", path=path)
    errors = inst.revert()
    assert len(errors) == 1 and errors[0].startswith("refused")
    assert (Path(store.path) / "escape").exists()


def test_host_removal_needs_an_allowed_root_and_the_instance_id(
    store: Store, tmp_path: Path
) -> None:
    inst = store.create()
    other = tmp_path / "other-instance"
    other.mkdir()
    mine = tmp_path / f"dir-{inst.id}"
    mine.mkdir()
    (mine / "f").write_text("x")
    inst.journal.record("remove_host", path=str(other))  # not this instance's name
    inst.journal.record("remove_host", path=f"/var/tmp/x-{inst.id}")  # outside the roots
    inst.journal.record("remove_host", path=f"{tmp_path}/../x-{inst.id}")  # not normal
    inst.journal.record("remove_host", path=str(mine))
    errors = inst.revert()
    assert len(errors) == 3 and all(e.startswith("refused") for e in errors)
    assert other.exists() and not mine.exists()


def test_host_socket_is_unlinked(store: Store) -> None:
    short = tempfile.mkdtemp(prefix="hk-")  # a socket path must fit in 108 bytes
    try:
        st = Store(f"{short}/hakurei", host_roots=[short])
        inst = st.create()
        path = f"{short}/sock-{inst.id}"
        inst.journal.record("remove_host", path=path)
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
        assert inst.revert() == []
        assert not os.path.lexists(path)
    finally:
        shutil.rmtree(short)


def test_kill_record_kills_its_process_but_not_a_pid_with_another_start_time(
    store: Store,
) -> None:
    a = subprocess.Popen(["sleep", "60"])
    b = subprocess.Popen(["sleep", "60"])
    try:
        inst = store.create()
        start_a = journal.starttime(a.pid)
        start_b = journal.starttime(b.pid)
        assert start_a is not None and start_b is not None
        inst.journal.record("kill", pid=a.pid, starttime=start_a)
        inst.journal.record("kill", pid=b.pid, starttime=start_b + 1)  # a reused pid
        assert inst.revert() == []
        assert a.wait(5) == -signal.SIGKILL
        assert b.poll() is None
    finally:
        b.kill()
        b.wait()


def test_records_with_unknown_kinds_or_wrong_fields_are_refused(store: Store) -> None:
    inst = store.create()
    with pytest.raises(ValueError):
        inst.journal.record("format_disk")
    os.write(inst.journal.fd, b'{"kind":"format_disk"}\n{"kind":"kill","pid":"1"}\n')
    inst.journal.record("test_note", name="a")
    errors = inst.revert()
    assert CALLS == ["a"]
    assert len(errors) == 2 and all(e.startswith("refused") for e in errors)


def test_instance_whose_creation_died_before_its_lock_is_collected(store: Store) -> None:
    os.mkdir(os.path.join(store.path, "0" * 32), 0o700)  # mkdir done, lock file not yet
    assert store.live() == []
    assert store.gc() == []
    assert os.listdir(store.path) == ["lock"]


def test_gc_leaves_names_that_are_not_instance_ids_alone(store: Store) -> None:
    (Path(store.path) / "notes").write_text("x")
    (Path(store.path) / ("0" * 31)).mkdir()
    assert store.gc() == []
    assert sorted(os.listdir(store.path)) == ["0" * 31, "lock", "notes"]
