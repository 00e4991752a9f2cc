"""The whitelisted functions: their arity, argument types, and what each compiles to.

`clip` and `days_ago` are rewritten into `min`/`max` and arithmetic, so that the two evaluators only
ever implement the primitive operations (and cannot disagree on the derived ones).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from decisioning.rules.errors import RuleError
from decisioning.rules.history_calls import HISTORY_FUNCTIONS, parse_history_call
from decisioning.rules.ir import NUMERIC, Arith, Const, Func, Hist, Node, Read, T
from decisioning.rules.typecheck import unify
from decisioning.types import DAY

if TYPE_CHECKING:
    from decisioning.rules.checker import Checker

MAX_DIGITS = 15
# name -> (fewest arguments, most arguments or None for any number)
ARITY = {
    "min": (2, None), "max": (2, None), "abs": (1, 1), "round": (1, 2), "clip": (3, 3),
    "coalesce": (2, None), "is_missing": (1, 1), "contains": (2, 2), "days_ago": (1, 1), "context": (1, 1),
}
FUNCTIONS = (*ARITY, *HISTORY_FUNCTIONS)


def check_call(checker: Checker, node: ast.Call, depth: int) -> Node:
    """The typed node of a call to one of the rule functions.

    >>> check("clip(score, 0, 1)", {"score": "number"}).root.name  # doctest: +SKIP
    'min'
    """
    name = node.func.id  # type: ignore[attr-defined]
    pos = checker.col(node)
    if name in HISTORY_FUNCTIONS:
        return Hist(parse_history_call(node, name, checker.col), pos=pos)
    _check_arity(checker, node, name)
    if name == "context":
        return _context(checker, node)
    if name == "round":
        operand = _numeric(checker, node.args[0], depth, name)
        return Func("round", (operand,), T.NUM, pos, _digits(checker, node))
    args = tuple(checker.visit(arg, depth) for arg in node.args)
    return _BUILDERS[name](args, pos)


def _check_arity(checker: Checker, node: ast.Call, name: str) -> None:
    if name not in ARITY:
        raise checker.error(f"unknown function '{name}' (allowed: {', '.join(FUNCTIONS)})", node.func)
    if node.keywords:
        raise checker.error(f"{name}() takes no keyword arguments", node.keywords[0].value)
    fewest, most = ARITY[name]
    if not fewest <= len(node.args) <= (most or len(node.args)):
        upto = "or more" if most is None else f"to {most}"
        wanted = f"{fewest}" if fewest == most else f"{fewest} {upto}"
        plural = "" if wanted == "1" else "s"
        raise checker.error(f"{name}() takes {wanted} argument{plural}, not {len(node.args)}", node)


def _context(checker: Checker, node: ast.Call) -> Node:
    key = node.args[0]
    if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value):
        raise checker.error("context() takes a quoted attribute name, e.g. context('page')", key)
    return Read(f"context:{key.value}", "attribute", T.ANY, checker.col(node))


def _numeric(checker: Checker, arg: ast.expr, depth: int, name: str) -> Node:
    node = checker.visit(arg, depth)
    _require_numbers((node,), name)
    return node


def _digits(checker: Checker, node: ast.Call) -> int:
    if len(node.args) == 1:
        return 0
    arg = node.args[1]
    sign = -1 if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub) else 1
    inner = arg.operand if isinstance(arg, ast.UnaryOp) else arg
    value = inner.value if isinstance(inner, ast.Constant) else None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_DIGITS:
        raise checker.error(f"round(x, n) needs n as a whole number from -{MAX_DIGITS} to {MAX_DIGITS}", arg)
    return sign * value


def _require_numbers(args: tuple[Node, ...], name: str) -> None:
    for arg in args:
        if arg.type is T.STR:
            raise RuleError(f"{name}() takes numbers, not a string", position=arg.pos)


def _min_max(name: str):
    def build(args: tuple[Node, ...], pos: int | None) -> Node:
        _require_numbers(args, name)
        return Func(name, args, T.NUM, pos)

    return build


def _abs(args: tuple[Node, ...], pos: int | None) -> Node:
    _require_numbers(args, "abs")
    return Func("abs", args, T.NUM, pos)


def _clip(args: tuple[Node, ...], pos: int | None) -> Node:
    _require_numbers(args, "clip")
    x, lo, hi = args
    return Func("min", (Func("max", (x, lo), T.NUM, pos), hi), T.NUM, pos)


def _days_ago(args: tuple[Node, ...], pos: int | None) -> Node:
    _require_numbers(args, "days_ago")
    elapsed = Arith("-", Read("now", "context", T.NUM, pos), args[0], pos)
    return Arith("/", elapsed, Const(DAY, T.NUM, pos), pos)


def _coalesce(args: tuple[Node, ...], pos: int | None) -> Node:
    return Func("coalesce", args, unify(args, "the arguments of coalesce()", pos), pos)


def _is_missing(args: tuple[Node, ...], pos: int | None) -> Node:
    return Func("is_missing", args, T.BOOL, pos)


def _contains(args: tuple[Node, ...], pos: int | None) -> Node:
    for arg in args:
        if arg.type in NUMERIC:
            raise RuleError(f"contains() takes text, not a {arg.type.value}", position=arg.pos)
    return Func("contains", args, T.BOOL, pos)


_BUILDERS = {
    "min": _min_max("min"), "max": _min_max("max"), "abs": _abs, "clip": _clip, "days_ago": _days_ago,
    "coalesce": _coalesce, "is_missing": _is_missing, "contains": _contains,
}
