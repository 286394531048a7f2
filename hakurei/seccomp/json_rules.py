"""The JSON form of a rule list (Go ``std.NativeRule``): ``--seccomp-rules`` and ``--format json``.

Reading and writing it are kept together so the two stay each other's
inverse.  Parsing checks every field before a ``Rule`` is built, with errors
that name the rule and the field (the CLI prints them as its one line), and
checks every syscall name against libseccomp, so a typo fails when the file
is read rather than when the first container starts.
"""

from __future__ import annotations

from ..errors import q
from .compile import syscall_number
from .rules import ArgCmp, Rule, RuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


def _rule_obj(r: Rule) -> dict[str, Any]:
    obj: dict[str, Any] = {"syscall": r.syscall, "errno": r.errno}
    if r.arg is not None:
        arg: dict[str, int] = {"arg": r.arg.index, "op": r.arg.op}
        # Go's omitempty
        if r.arg.a:
            arg["a"] = r.arg.a
        if r.arg.b:
            arg["b"] = r.arg.b
        obj["arg"] = arg
    return obj


def rules_to_json(rules: Iterable[Rule]) -> str:
    """A JSON array, one rule per line, in the order init applies them."""
    import json

    lines = [json.dumps(_rule_obj(r), separators=(",", ":")) for r in rules]
    if not lines:
        return "[]\n"
    return "[\n  " + ",\n  ".join(lines) + "\n]\n"


def _int_field(where: str, obj: dict[str, Any], key: str, default: int | None = None) -> int:
    v = obj.get(key, default)
    if v is None:
        raise RuleError(f"{where}: missing {q(key)}")
    if not isinstance(v, int) or isinstance(v, bool):
        raise RuleError(f"{where}: {q(key)} must be an integer, not {type(v).__name__}")
    return v


def rules_from_json(text: str) -> list[Rule]:
    """Parse the JSON form; every syscall name must be known to libseccomp."""
    import json

    try:
        data = json.loads(text)
    except ValueError as e:
        raise RuleError(f"invalid seccomp rules: {e}") from None
    if not isinstance(data, list):
        raise RuleError("seccomp rules must be a JSON array of rule objects")
    rules = []
    for i, obj in enumerate(data):
        where = f"rule {i}"
        if not isinstance(obj, dict):
            raise RuleError(f"{where}: must be an object")
        unknown = set(obj) - {"syscall", "errno", "arg"}
        if unknown:
            raise RuleError(f"{where}: unknown field {q(sorted(unknown)[0])}")
        name = obj.get("syscall")
        if not isinstance(name, str):
            raise RuleError(f"{where}: {q('syscall')} must be a syscall name")
        syscall_number(name)  # SyscallNameError names it
        arg = None
        raw = obj.get("arg")
        if raw is not None:
            if not isinstance(raw, dict):
                raise RuleError(f"{where}: {q('arg')} must be an object")
            unknown = set(raw) - {"arg", "op", "a", "b"}
            if unknown:
                raise RuleError(f"{where}: unknown arg field {q(sorted(unknown)[0])}")
            arg = ArgCmp(
                _int_field(where, raw, "arg"),
                _int_field(where, raw, "op"),
                _int_field(where, raw, "a", 0),
                _int_field(where, raw, "b", 0),
            )
        rules.append(Rule(name, _int_field(where, obj, "errno"), arg))
    return rules
