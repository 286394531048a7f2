"""``Kernel.symlink_in``, real kernel: an identical existing link is fine (bubblewrap >= 0.9)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hakurei.errors import PathError
from hakurei.init.kernel import Kernel


def test_the_same_link_twice_is_fine(tmp_path: Path) -> None:
    k = Kernel()
    k.symlink_in(str(tmp_path), "usr/bin", "/a/l", 0o755)
    k.symlink_in(str(tmp_path), "usr/bin", "/a/l", 0o755)
    assert os.readlink(tmp_path / "a" / "l") == "usr/bin"


@pytest.mark.parametrize("existing", ["link", "file", "dir"])
def test_anything_else_already_there_is_eexist(tmp_path: Path, existing: str) -> None:
    where = tmp_path / "l"
    if existing == "link":
        where.symlink_to("other")
    elif existing == "file":
        where.write_text("usr/bin")
    else:
        where.mkdir()
    with pytest.raises(PathError) as e:
        Kernel().symlink_in(str(tmp_path), "usr/bin", "/l", 0o755)
    assert e.value.errno == errno.EEXIST
