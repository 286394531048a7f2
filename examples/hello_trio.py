"""Run one program in a fresh unprivileged container from trio, and wait for it.

The container gets the default profile (read-only host /usr and friends, a
private /tmp, /proc and /dev): see ``hakurei.profile.default_ops``.
"""

from __future__ import annotations

import trio

import hakurei
from hakurei import profile


async def main() -> int:
    result = await hakurei.run(["/bin/echo", "hello from a container"], ops=profile.default_ops())
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(trio.run(main))
