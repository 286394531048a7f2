"""docs/protocol.md's worked example is checked against the code, so it cannot drift.

The section's Python block is run as printed; the frame it builds must have
the length, header, map size, ``xxd -g1`` dump and decoded map the text shows.
When the record changes, run this file as a script to print the current
values to paste into the doc::

    python tests/unit/test_protocol_example.py
"""

from __future__ import annotations

import ast
from pathlib import Path

import msgpack

DOC_NAME = "protocol.md"


def doc_path() -> Path:
    """docs/protocol.md in a checkout, or beside the suite copy that scripts/test.sh makes."""
    here = Path(__file__).resolve()
    root = here.parents[2]  # the checkout, or $WORK/suite under the test command
    for candidate in (root / "docs" / DOC_NAME, root.parent / "src" / "docs" / DOC_NAME):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"cannot find docs/{DOC_NAME} from {here}")  # never a skip


def section() -> str:
    text = doc_path().read_text()
    start = text.index("## Worked example")
    end = text.index("\n## ", start + 1) if "\n## " in text[start + 1 :] else len(text)
    sub = text.find("\n### ", start)
    return text[start : sub if 0 < sub < end else end]


def blocks(text: str, lang: str = "") -> list[str]:
    """The fenced code blocks of ``text`` whose opening fence is exactly ```` ```lang ````."""
    found: list[str] = []
    opened: str | None = None  # the language of the block we are in
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        fence = line.rstrip("\n")
        if opened is None and fence.startswith("```"):
            opened, lines = fence[3:], []
        elif opened is not None and fence == "```":
            if opened == lang:
                found.append("".join(lines))
            opened = None
        elif opened is not None:
            lines.append(line)
    return found


def build_frame(code: str) -> bytes:
    scope: dict[str, object] = {}
    exec(compile(code, DOC_NAME, "exec"), scope)  # the doc's own code, as printed
    frame = scope["frame"]
    assert isinstance(frame, bytes)
    return frame


def xxd(data: bytes) -> str:
    """``xxd -g1`` of ``data``, as the doc shows it."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:08x}: {hexes:<47}  {text}")
    return "\n".join(lines) + "\n"


def hexes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def facts(frame: bytes) -> dict[str, str]:
    """The sentences of the section that are computed from the frame."""
    body = frame[10:]
    n = msgpack.unpackb(body, raw=False)
    assert body[0] == 0xDE  # map16
    return {
        "length": f"`frame` is {len(frame)} bytes.",
        "header": f"`{hexes(frame[6:10])}` (a {len(body)}-byte body)",
        "map": f"`{hexes(body[:3])}`, a map16 of {len(n)} entries",
    }


def test_worked_example_code_runs_and_round_trips() -> None:
    code = blocks(section(), "python")[0]
    frame = build_frame(code)  # its own ``assert decode(frame).ops == ops`` runs too
    assert frame[:6] == b"HKRI\x00\x05"


def test_worked_example_states_the_frames_length_header_and_map_size() -> None:
    text = " ".join(section().split())  # the prose is wrapped anywhere
    frame = build_frame(blocks(section(), "python")[0])
    for name, sentence in facts(frame).items():
        assert sentence in text, f"{name}: the doc should say {sentence!r}"


def test_worked_example_dump_is_the_frame_byte_for_byte() -> None:
    text = section()
    frame = build_frame(blocks(text, "python")[0])
    dumps = [b for b in blocks(text) if b.startswith("00000000: ")]
    assert dumps == [xxd(frame)]


def test_worked_example_decoded_map_is_what_msgpack_gives_back() -> None:
    text = section()
    frame = build_frame(blocks(text, "python")[0])
    shown = [b for b in blocks(text, "python") if b.lstrip().startswith("{")]
    assert len(shown) == 1
    assert ast.literal_eval(shown[0]) == msgpack.unpackb(frame[10:])


if __name__ == "__main__":
    frame = build_frame(blocks(section(), "python")[0])
    for sentence in facts(frame).values():
        print(sentence)
    print(xxd(frame), end="")
