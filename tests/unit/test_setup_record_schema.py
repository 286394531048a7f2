"""The setup record's schema is closed: an unknown field or an absurd fd count is refused.

Found by the mutant set (scripts/mutants.py): with the unknown-field check or
the extra-file bound deleted, the whole suite still passed.  A field the shim
does not know is most likely a security setting from a newer parent (say, a
new scope or filter flag); ignoring it would start a container with less
confinement than the caller asked for, so it must be an error, named.
"""

from __future__ import annotations

import msgpack
import pytest

from hakurei.errors import SetupError
from hakurei.wire import HEADER_LEN, MAGIC, VERSION, decode, encode

import records

FRAME = encode(records.make_setup())


def frame_of(body: object) -> bytes:
    raw = msgpack.packb(body, use_bin_type=True)
    return MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw


#: ``fetch``: protocol 3's warm-start fd list, gone since 4 (no shim takes fds any more).
@pytest.mark.parametrize("name", ["landlock_off", "allow_everything", "Uid", "", "fetch"])
def test_an_unknown_record_field_is_rejected_by_name(name: str) -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body[name] = True
    with pytest.raises(SetupError, match=f"unknown field {name!r}"):
        decode(frame_of(body))


def test_extra_file_count_is_bounded_at_1024() -> None:
    assert records.make_setup(files=1024).files == 1024
    with pytest.raises(SetupError, match="bad extra file count 1025"):
        records.make_setup(files=1025)
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body["files"] = 1 << 20
    with pytest.raises(SetupError, match="bad extra file count 1048576"):
        decode(frame_of(body))
