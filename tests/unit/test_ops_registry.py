"""Ops register themselves and load on first use; building them loads no kernel seam.

What a user sees: a trio program that only builds ops (or the default
profile) does not pay for ctypes and python-prctl; a shim decoding a record
imports only the op modules the record names; ``import hakurei.ops.bind``
is the module, not a builder function.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import types

import hakurei.ops
import hakurei.ops.bind
from hakurei import errors, seccomp, std
from hakurei.init import kernel
from hakurei.ops import REGISTRY, Bind, Ops
from hakurei.ops.base import MODULES
from hakurei.wire import encode

import records


def fresh(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new isolated interpreter (nothing imported yet), output captured."""
    return subprocess.run(
        [sys.executable, "-I", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_building_the_default_profile_loads_no_ctypes() -> None:
    r = fresh(
        "import sys\n"
        "from hakurei.ops import Ops, BIND_WRITABLE\n"
        "from hakurei.profile import default_ops\n"
        "from hakurei.std import MS_RDONLY\n"
        "ops = default_ops()\n"
        "ops.extend(Ops().bind('/srv', '/srv', BIND_WRITABLE).remount('/srv', MS_RDONLY))\n"
        "loaded = {'ctypes', '_ctypes', '_prctl', 'hakurei.init.kernel'} & set(sys.modules)\n"
        "print(len(ops), sorted(loaded))\n"
    )
    assert r.returncode == 0, r.stderr
    count, loaded = r.stdout.split(" ", 1)
    assert int(count) > 10
    assert loaded == "[]\n"


def test_a_decoded_record_imports_only_the_ops_it_names() -> None:
    frame = encode(records.make_setup(Ops().bind("/usr", "/usr").tmpfs("/tmp")))
    r = fresh(
        "import sys\n"
        "from hakurei.wire import decode\n"
        "setup = decode(bytes.fromhex(sys.argv[1]))\n"
        "print([type(op).__name__ for op in setup.ops])\n"
        "print(sorted(m for m in sys.modules if m.startswith('hakurei.ops.')))\n",
        frame.hex(),
    )
    assert r.returncode == 0, r.stderr
    decoded, modules = r.stdout.splitlines()
    assert decoded == "['Bind', 'Tmpfs']"
    assert modules == str(
        ["hakurei.ops._mount", "hakurei.ops.base", "hakurei.ops.bind", "hakurei.ops.tmpfs"]
    )


def test_a_record_with_an_unknown_tag_is_refused_without_importing_anything() -> None:
    frame = encode(records.make_setup(Ops().bind("/usr", "/usr")))
    # The same record with the op's tag renamed to a module of the package that is no op.
    bad = frame.replace(b"\xa4bind", b"\xa4base")
    assert bad != frame
    r = fresh(
        "import sys\n"
        "from hakurei.errors import SetupError\n"
        "from hakurei.wire import decode\n"
        "try:\n"
        "    decode(bytes.fromhex(sys.argv[1]))\n"
        "except SetupError as e:\n"
        "    print(e)\n"
        "print(sorted(m for m in sys.modules if m.startswith('hakurei.ops.')))\n",
        bad.hex(),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "unknown op type 'base' at index 0",
        "['hakurei.ops.base']",
    ]


def test_op_submodules_are_modules_not_builder_functions() -> None:
    assert isinstance(hakurei.ops.bind, types.ModuleType)
    assert hakurei.ops.bind.Bind is Bind
    assert Ops().etc() == Ops().mkdir("/etc").bind("/etc", "/etc/.host/host").add(
        hakurei.ops.AutoEtc("host")
    )


def test_every_op_module_registers_the_tags_listed_for_it() -> None:
    path = hakurei.ops.__path__
    names = {m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")}
    assert names - {"base"} == set(MODULES.values())
    for tag, module in MODULES.items():
        cls = REGISTRY[tag]
        assert (cls.TAG, cls.__module__) == (tag, f"hakurei.ops.{module}")
    assert sorted(REGISTRY) == sorted(MODULES)
    assert REGISTRY.get("base") is None and REGISTRY.get("_mount") is None
    assert REGISTRY.get(["bind"]) is None and "base" not in REGISTRY


def test_std_constants_are_the_ones_their_users_apply() -> None:
    """One value per name: std, the kernel seam, the filter compiler and errors agree."""
    for name in dir(std):
        if name.startswith(("MS_", "MNT_", "MOUNT_ATTR_", "CLONE_")):
            assert getattr(kernel, name) == getattr(std, name), name
    presets = ("EXT", "DENY_NS", "DENY_TTY", "DENY_DEVEL", "LINUX32", "STRICT")
    exports = ("ALLOW_ID_CALLS", "EVERYDAY", "ALLOW_MULTIARCH", "ALLOW_CAN", "ALLOW_BLUETOOTH")
    for name in (*presets, *exports, "ALLOW_IO_URING"):
        assert getattr(seccomp, name) == getattr(std, name), name
    for name in ("EXIT_SETUP", "EXIT_NOEXEC", "EXIT_NOTFOUND"):
        assert getattr(errors, name) == getattr(std, name), name
    assert (std.BIND_OPTIONAL, std.BIND_WRITABLE, std.BIND_DEVICE, std.BIND_ENSURE) == (1, 2, 4, 8)
