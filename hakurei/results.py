"""What a finished container gives back, and ``subprocess.run``'s argument rules.

Shared by the blocking face (``sync.run_sync``) and the trio face
(``container.run``), so both answer the same way.
"""

from __future__ import annotations

from .errors import HakureiError
from .wire import check_wait

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, TypeAlias

    Stdio: TypeAlias = int | IO[Any] | None


class Completed:
    """What ``run``/``run_sync`` return: like ``subprocess.CompletedProcess``."""

    def __init__(
        self,
        args: list[str],
        returncode: int,
        stdout: bytes | str | None,
        stderr: bytes | str | None,
    ) -> None:
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Completed(args={self.args!r}, returncode={self.returncode})"

    def check(self) -> Completed:
        """Raise ``ContainerExitError`` unless the status is 0."""
        if self.returncode:
            raise ContainerExitError(self)
        return self


class ContainerExitError(HakureiError):
    """A container exited non-zero and the caller asked for ``check=True``."""

    def __init__(self, result: Completed) -> None:
        super().__init__(result)
        self.result = result
        self.status = result.returncode

    def __str__(self) -> str:
        raw = self.result.stderr or b""
        text = raw if isinstance(raw, str) else raw.decode(errors="replace")
        err = text.strip().splitlines()
        tail = f": {err[-1]}" if err else ""
        return f"{self.result.args[0]} exited with status {self.result.returncode}{tail}"


def check_run_args(
    fn: str,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    input: bytes | str | None,
    capture_output: bool,
    timeout: float | None,
    text: bool,
) -> bytes | None:
    """``subprocess.run``'s argument rules, naming the function the user called.

    Returns ``input`` as bytes (None if not given).  ``text`` means UTF-8
    with universal newlines, whatever the locale: a container's program gets
    no locale of ours, so ours would be a guess.
    """
    if capture_output and (stdout is not None or stderr is not None):
        raise ValueError(f"{fn}: stdout and stderr arguments may not be used with capture_output")
    if input is not None and stdin is not None:
        raise ValueError(f"{fn}: stdin and input arguments may not both be used")
    if timeout is not None:
        check_wait(f"{fn}: timeout", timeout)
    if input is None:
        return None
    if text and isinstance(input, str):
        return input.encode()
    if not text and isinstance(input, (bytes, bytearray, memoryview)):
        return bytes(input)
    want = "str with text=True" if text else "bytes (str needs text=True)"
    raise TypeError(f"{fn}: input must be {want}, not {type(input).__name__}")


def decoded(data: bytes | None, text: bool) -> bytes | str | None:
    """Captured output as ``subprocess.run`` gives it: bytes, or text with universal newlines."""
    if data is None or not text:
        return data
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


__all__ = ["Completed", "ContainerExitError", "check_run_args", "decoded"]
