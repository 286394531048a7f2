"""``hakurei template`` and ``hakurei show --no-store`` as a user runs them.

The launcher's config layer (issue 7) seen from the real command: the
template is a config ``show`` accepts unchanged, and a bad config is one
line naming the file and the key, exit 125, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import hakurei


def test_template_prints_a_config_that_show_accepts_unchanged() -> None:
    t = hakurei("template")
    assert (t.returncode, t.stderr) == (0, "")
    template = json.loads(t.stdout)
    assert template["version"] == 1
    assert {e["type"] for e in template["container"]["filesystem"]} == {
        "bind",
        "ephemeral",
        "link",
        "overlay",
    }
    shown = hakurei("show", "-", "--no-store", "--json", input=t.stdout)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == t.stdout
    short = hakurei("show", "-", "--no-store", "--json", "--short", input=t.stdout)
    assert short.stdout.count("\n") == 1 and json.loads(short.stdout) == template


def test_show_prints_a_config_in_hakureis_sections(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(hakurei("template").stdout)
    r = hakurei("show", "--no-store", str(path))
    assert (r.returncode, r.stderr) == (0, "")
    lines = r.stdout.splitlines()
    assert lines[:3] == [
        "App",
        " Identity:    9 (org.example.XTerm)",
        " Enablements: x11 (untrusted cookie), dbus, pulse (instance socket)",
    ]
    assert " w-/var/lib/hakurei/xterm:/home/app" in lines
    assert "Session bus" in lines and "Filesystem" in lines
    assert "Filesystem" not in hakurei("show", "--no-store", "--short", str(path)).stdout


def test_show_refuses_a_bad_config_in_one_line_naming_file_and_key(tmp_path: Path) -> None:
    config = json.loads(hakurei("template").stdout)
    config["container"]["filesystem"][2]["dsst"] = "/x"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    r = hakurei("show", str(path), "--no-store")
    assert (r.returncode, r.stdout) == (125, "")
    assert r.stderr == f"hakurei: {path}: container.filesystem[2].dsst: unknown key\n"
    path.write_text('{\n  "id": "org.x.Y",\n}\n')
    r = hakurei("show", str(path), "--no-store")
    assert r.returncode == 125
    assert r.stderr == (
        f"hakurei: {path}: line 3 column 1: Expecting property name enclosed in double quotes\n"
    )


def test_show_reads_a_config_without_no_store_unless_it_looks_like_an_id(tmp_path: Path) -> None:
    t = hakurei("template")
    assert (
        hakurei("show", "-", input=t.stdout).stdout
        == hakurei("show", "-", "--no-store", input=t.stdout).stdout
    )
    named = tmp_path / "0123abcd"  # a config file named like an instance id
    named.write_text(t.stdout)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    assert hakurei("show", "--no-store", str(named), env=env).returncode == 0
    r = hakurei("show", "0123abcd", env=env, cwd=tmp_path)  # no such instance, but a file
    assert (r.returncode, r.stderr) == (0, "")
    r = hakurei("show", "4567abcd", env=env, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (125, "")
    assert r.stderr == 'hakurei: no live instance "4567abcd" (see hakurei ps)\n'
