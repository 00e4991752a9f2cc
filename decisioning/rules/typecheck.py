"""Static type rules: which operand types each operator accepts, and what mixed branches become.

A bool is a number (1 or 0) in arithmetic and ordering, as in Python. A string never meets a number:
when both types are known at compile time that is a RuleError here; when one side is only known at
evaluation (type ANY) the evaluators check it there.
"""

from __future__ import annotations

from collections.abc import Iterable

from decisioning.rules.errors import RuleError
from decisioning.rules.ir import NUMERIC, Node, T


def check_numeric(node: Node, what: str) -> None:
    """Refuse a string (or a literal None) where arithmetic needs a number.

    >>> check_numeric(Const("a", T.STR, 1), "'+'")  # doctest: +SKIP
    RuleError: arithmetic on a string ('+')
    """
    if node.type is T.STR:
        raise RuleError(f"arithmetic on a string ({what})", position=node.pos)


def check_comparable(left: Node, right: Node, op: str) -> None:
    """Refuse comparisons that can never be meaningful: with None, or a string with a number."""
    for side in (left, right):
        if side.type is T.NONE and op != "in":
            raise RuleError(f"'{op}' with None is never true; use is_missing(x)", position=side.pos)
    kinds = {left.type, right.type}
    if T.ANY in kinds or T.NONE in kinds:
        return
    if T.STR in kinds and kinds & NUMERIC:
        other = (kinds - {T.STR}).pop()
        raise RuleError(f"'{op}' compares a string with a {other}", position=left.pos)


def unify(nodes: Iterable[Node], what: str, pos: int | None) -> T:
    """The type of a value that may come from any of `nodes` (if/else branches, coalesce arguments).

    >>> unify([Const(1.0, T.NUM), Const(None, T.NONE)], "branches", 1)  # doctest: +SKIP
    <T.NUM: 'number'>
    """
    kinds = {node.type for node in nodes} - {T.NONE}
    if not kinds:
        return T.NONE
    if T.STR in kinds and kinds & NUMERIC:
        names = " and ".join(sorted(k.value for k in kinds - {T.ANY}))
        raise RuleError(f"{what} have different types ({names})", position=pos)
    if len(kinds) == 1:
        return kinds.pop()
    return T.ANY if T.ANY in kinds else T.NUM  # a bool mixed with numbers is a number
