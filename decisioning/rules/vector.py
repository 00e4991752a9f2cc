"""The vectorised evaluator: the typed tree becomes nested closures over whole numpy columns.

Every operation runs once per column, never once per row. `and`/`or`/`if` narrow the `active` rows that
their later operands are evaluated for, so that errors (and only errors: values are computed for all
rows) follow the online evaluator's short-circuits exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from decisioning.rules import vector_ops as ops
from decisioning.rules.columns import Array, Dyn
from decisioning.rules.ir import (
    Arith,
    BoolOp,
    Compare,
    Const,
    Func,
    Hist,
    IfElse,
    Member,
    Neg,
    Node,
    Not,
    Read,
    T,
)
from decisioning.rules.vector_ops import Active, Value


@dataclass(frozen=True, slots=True)
class Env:
    columns: Mapping[str, Array | Dyn]  # bound inputs, by column key
    n: int


Evaluator = Callable[[Env, Active], Value]
VectorFunction = Callable[[Env], Array]


def build_vector(root: Node, kind: str) -> VectorFunction:
    """Compile the typed tree into `fn(env) -> bool array | float64 array`.

    >>> fn = build_vector(check("age >= 18", {"age": "number"}).root, "bool")  # doctest: +SKIP
    >>> fn(Env({"age": np.array([17.0, 40.0])}, 2))  # doctest: +SKIP
    array([False,  True])
    """
    evaluate = build(root)
    if kind == "bool":
        return lambda env: ops.truth(evaluate(env, None), root.type)

    def number(env: Env) -> Array:
        value = evaluate(env, None)
        if isinstance(value, Dyn) and value.is_text is not None:
            ops.fail_rows(value.is_text, None, "a number rule gave text", root.pos)
        return ops.as_number(value, root.type, env.n, None, root.pos)

    return number


def build(node: Node) -> Evaluator:
    return _BUILDERS[type(node)](node)


def _const(node: Const) -> Evaluator:
    return lambda env, active: ops.constant(node.value, node.type, env.n)


def _read(node: Read | Hist) -> Evaluator:
    key = node.key if isinstance(node, Read) else node.call.key
    return lambda env, active: env.columns[key]


def _number(node: Node) -> Evaluator:
    """An evaluator of the node's value as float64 (bools 1/0, missing NaN)."""
    evaluate, kind, pos = build(node), node.type, node.pos
    return lambda env, active: ops.as_number(evaluate(env, active), kind, env.n, active, pos)


def _truth(node: Node) -> Evaluator:
    evaluate, kind = build(node), node.type
    return lambda env, active: ops.truth(evaluate(env, active), kind)


def _not(node: Not) -> Evaluator:
    operand = _truth(node.operand)
    return lambda env, active: ~operand(env, active)


def _bool_op(node: BoolOp) -> Evaluator:
    items, is_and = [_truth(item) for item in node.items], node.op == "and"

    def evaluate(env: Env, active: Active) -> Array:
        result = items[0](env, active)
        for item in items[1:]:
            # Later operands only matter (and can only fail) where the result is still open.
            open_rows = result if is_and else ~result
            if not open_rows.any():
                break
            value = item(env, open_rows if active is None else open_rows & active)
            result = result & value if is_and else result | value
        return result

    return evaluate


def _compare(node: Compare) -> Evaluator:
    operands, kinds = [build(n) for n in node.operands], [n.type for n in node.operands]

    def evaluate(env: Env, active: Active) -> Array:
        left, result, live = operands[0](env, active), None, active
        for op, operand, a_kind, b_kind in zip(node.ops, operands[1:], kinds, kinds[1:], strict=False):
            right = operand(env, live)
            link = ops.compare(op, left, a_kind, right, b_kind, live, node.pos)
            result = link if result is None else result & link
            live, left = (result if active is None else result & active), right
        return result  # type: ignore[return-value]

    return evaluate


def _member(node: Member) -> Evaluator:
    operand, kind = build(node.operand), node.operand.type

    def evaluate(env: Env, active: Active) -> Array:
        if node.values_type is T.NONE:
            return np.full(env.n, node.negate)
        found = ops.member(operand(env, active), kind, node.values, node.values_type)
        return ~found if node.negate else found

    return evaluate


def _arith(node: Arith) -> Evaluator:
    left, right = _number(node.left), _number(node.right)
    op = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": ops.divide, "%": ops.modulo}[node.op]
    return lambda env, active: op(left(env, active), right(env, active))


def _neg(node: Neg) -> Evaluator:
    operand = _number(node.operand)
    return lambda env, active: -operand(env, active)


def _if_else(node: IfElse) -> Evaluator:
    cond, then, orelse, kind = _truth(node.cond), build(node.then), build(node.orelse), node.type
    kinds = (node.then.type, node.orelse.type)

    def evaluate(env: Env, active: Active) -> Value:
        chosen = cond(env, active)
        yes = then(env, chosen if active is None else chosen & active)
        no = orelse(env, ~chosen if active is None else ~chosen & active)
        return _choose(chosen, (yes, no), kinds, kind, env.n)

    return evaluate


def _choose(chosen: Array, values: tuple[Value, Value], kinds: tuple[T, T], kind: T, n: int) -> Value:
    yes, no = (_represent(v, k, kind, n) for v, k in zip(values, kinds, strict=True))
    if isinstance(yes, Dyn):
        return yes.where(chosen, no)  # type: ignore[arg-type]
    return np.where(chosen, yes, no)


def _represent(value: Value, kind: T, target: T, n: int) -> Value:
    """A value in the representation of the type it is combined into (if/else, coalesce)."""
    if target is T.NUM:
        return ops.as_number(value, kind, n, None, None)  # numbers and bools only: cannot fail
    if target is T.STR:
        return ops.as_text(value, kind, n)
    if target is T.BOOL:
        return value if kind is T.BOOL else np.full(n, np.nan)
    return ops.as_dyn(value, kind)


def _func(node: Func) -> Evaluator:
    if node.name in ("min", "max", "abs", "round"):
        return _numeric_func(node)
    args, kinds = [build(a) for a in node.args], [a.type for a in node.args]
    if node.name == "coalesce":
        return lambda env, active: ops.coalesce(
            [_represent(a(env, active), k, node.type, env.n) for a, k in zip(args, kinds, strict=True)],
            node.type, env.n,
        )
    if node.name == "is_missing":
        return lambda env, active: ops.missing(args[0](env, active), kinds[0])
    def contains(env: Env, active: Active) -> Array:
        text, needle = (ops.as_dyn(a(env, active), k) for a, k in zip(args, kinds, strict=True))
        return ops.contains(text, needle, active, node.pos)

    return contains


def _numeric_func(node: Func) -> Evaluator:
    args = [_number(a) for a in node.args]
    if node.name == "abs":
        return lambda env, active: np.abs(args[0](env, active))
    if node.name == "round":
        return lambda env, active: np.round(args[0](env, active), node.digits)
    fold = np.minimum if node.name == "min" else np.maximum

    def evaluate(env: Env, active: Active) -> Array:
        out = args[0](env, active)
        for arg in args[1:]:
            out = fold(out, arg(env, active))  # NaN propagates, as online
        return out

    return evaluate


_BUILDERS: dict[type, Callable[..., Evaluator]] = {
    Const: _const, Read: _read, Hist: _read, Not: _not, BoolOp: _bool_op, Compare: _compare,
    Member: _member, Arith: _arith, Neg: _neg, IfElse: _if_else, Func: _func,
}
