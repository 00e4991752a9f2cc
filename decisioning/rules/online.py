"""The online evaluator: the typed tree becomes one small Python function, compiled once per rule.

The function is built as a *new* Python AST from the checked tree (never from the rule text), calls
only the helpers of `decisioning.rules.scalar`, and runs with empty `__builtins__`. Typed number
operations are emitted as plain float operators (NaN already behaves as the language wants there),
so a typical rule costs one function call and a few dictionary reads.

    def _rule(f, c, h):          # features, Context, HistoryView | None
        v0 = _read_number(f.get('age'), 'age')
        v1 = _read_bool(f.get('has_credit_card'), 'has_credit_card')
        return v0 >= 18.0 and not v1 is True
"""

from __future__ import annotations

import ast
import math
import types
from collections.abc import Callable, Mapping
from typing import Any

from decisioning.rules import scalar
from decisioning.rules.ir import (
    NUMERIC,
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
    is_pure_bool,
)
from decisioning.summary import HistoryView
from decisioning.types import Context

OnlineFunction = Callable[[Mapping[str, Any], Context, HistoryView | None], Any]

_HELPERS = {
    f"_{name}": getattr(scalar, name)
    for name in (
        "read_number", "read_bool", "read_text", "read_any", "truth", "missing", "bool_number", "to_number",
        "equal", "order", "in_texts", "in_numbers", "div", "mod", "minimum", "maximum",
        "absolute", "round_half_even", "coalesce", "contains", "number_result",
    )
}
_READERS = {T.NUM: "_read_number", T.BOOL: "_read_bool", T.STR: "_read_text", T.ANY: "_read_any"}
_NORMAL_CLASS = {T.NUM: "_float", T.BOOL: "_bool", T.STR: "_str"}
_CLASSES = {"_float": float, "_bool": bool, "_str": str}
_CMP = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE}
_BIN = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult}
_DIV = {"/": "_div", "%": "_mod"}


def build_online(root: Node, kind: str) -> OnlineFunction:
    """Compile the typed tree into `fn(features, context, history) -> bool | float`.

    >>> fn = build_online(check("age >= 18", {"age": "number"}).root, "bool")  # doctest: +SKIP
    >>> fn({"age": 40}, Context("web", 0.0), None)  # doctest: +SKIP
    True
    """
    gen = _Generator()
    body = gen.truth(root) if kind == "bool" else gen.result_number(root)
    return gen.function(body)


def _name(identifier: str) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def _call(helper: str, *args: ast.expr) -> ast.Call:
    return ast.Call(_name(helper), list(args), [])


def _const(value: object) -> ast.Constant:
    return ast.Constant(value)


class _Generator:
    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__builtins__": {}, **_HELPERS, **_CLASSES}
        self.prologue: list[ast.stmt] = []
        self.locals: dict[str, str] = {}
        self.calls: dict[str, str] = {}
        self.temps = 0

    def function(self, body: ast.expr) -> OnlineFunction:
        params = ast.arguments([], [ast.arg("f"), ast.arg("c"), ast.arg("h")], None, [], [], None, [])
        definition = ast.FunctionDef("_rule", params, [*self.prologue, ast.Return(body)], [], None, None)
        module = ast.fix_missing_locations(ast.Module([definition], []))
        code = compile(module, "<rule>", "exec")
        # Take the function's code object out of the module's constants: nothing is exec'd.
        function_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        return types.FunctionType(function_code, self.namespace, "_rule")

    # --- values ------------------------------------------------------------------------------------------
    def expr(self, node: Node) -> ast.expr:
        """The node's value in its normalised representation (see `scalar`)."""
        return getattr(self, f"gen_{type(node).__name__}")(node)

    def gen_Const(self, node: Const) -> ast.expr:
        return _const(node.value)

    def gen_Read(self, node: Read) -> ast.expr:
        if node.key not in self.locals:
            local = self.locals[node.key] = f"v{len(self.locals)}"
            self.prologue.extend(self.read(local, node))
        return _name(self.locals[node.key])

    def read(self, local: str, node: Read) -> list[ast.stmt]:
        """`v = <source>` then, unless it already has the normalised class, `v = _read_x(v, key)`."""
        store = ast.Name(local, ast.Store())
        normalise = _call(_READERS[node.type], _name(local), _const(node.key))
        fetch = ast.Assign([store], self.source(node))
        if node.type not in _NORMAL_CLASS:
            return [fetch, ast.Assign([store], normalise)]
        klass = ast.Attribute(_name(local), "__class__", ast.Load())
        # The common case (a float already, a bool, a str) skips the call: reads dominate a rule's cost.
        test = ast.Compare(klass, [ast.IsNot()], [_name(_NORMAL_CLASS[node.type])])
        return [fetch, ast.If(test, [ast.Assign([store], normalise)], [])]

    def source(self, node: Read) -> ast.expr:
        # Every read is hoisted into the prologue: each input is read (and checked) once, up front.
        if node.source == "feature":
            return ast.Call(ast.Attribute(_name("f"), "get", ast.Load()), [_const(node.key)], [])
        if node.source == "context":
            return ast.Attribute(_name("c"), node.key, ast.Load())
        attributes = ast.Attribute(_name("c"), "attributes", ast.Load())
        key = node.key.removeprefix("context:")
        return ast.Call(ast.Attribute(attributes, "get", ast.Load()), [_const(key)], [])

    def gen_Hist(self, node: Hist) -> ast.expr:
        helper = self.calls.setdefault(node.call.key, f"_h{len(self.calls)}")
        self.namespace[helper] = node.call.evaluate
        return _call(helper, _name("h"))  # inline, so a short-circuited call is never computed

    def gen_Not(self, node: Not) -> ast.expr:
        return ast.UnaryOp(ast.Not(), self.truth(node.operand))

    def gen_BoolOp(self, node: BoolOp) -> ast.expr:
        op = ast.And() if node.op == "and" else ast.Or()
        return ast.BoolOp(op, [self.truth(item) for item in node.items])

    def gen_Compare(self, node: Compare) -> ast.expr:
        if all(n.type in NUMERIC for n in node.operands):
            # Floats: Python's own chain has exactly the language's semantics (NaN compares False).
            left, *rest = (self.number(n) for n in node.operands)
            return ast.Compare(left, [_CMP[op]() for op in node.ops], rest)
        links, left, left_type = [], self.expr(node.operands[0]), node.operands[0].type
        for i, (op, right_node) in enumerate(zip(node.ops, node.operands[1:], strict=True)):
            right = self.expr(right_node)
            if i < len(node.ops) - 1 and not isinstance(right, ast.Name | ast.Constant):
                right, reuse = self.temp(right)
            else:
                reuse = right
            links.append(self.link(op, left, left_type, right, right_node.type, node.pos))
            left, left_type = reuse, right_node.type
        return links[0] if len(links) == 1 else ast.BoolOp(ast.And(), links)

    def temp(self, value: ast.expr) -> tuple[ast.expr, ast.expr]:
        """Bind a chain's middle operand once: `(t0 := value)`, then `t0`."""
        name = f"t{self.temps}"
        self.temps += 1
        return ast.NamedExpr(ast.Name(name, ast.Store()), value), _name(name)

    def link(self, op: str, a: ast.expr, a_type: T, b: ast.expr, b_type: T, pos: int | None) -> ast.expr:
        """One comparison of a chain, on values in their normalised representation."""
        if a_type in NUMERIC and b_type in NUMERIC:
            return ast.Compare(self.as_number(a, a_type), [_CMP[op]()], [self.as_number(b, b_type)])
        literal = isinstance(a, ast.Constant) or isinstance(b, ast.Constant)
        if op in ("==", "!=") and a_type is T.STR and b_type is T.STR and literal:
            return ast.Compare(a, [_CMP[op]()], [b])  # None == 'x' is False, None != 'x' is True: as wanted
        if op == "==":
            return _call("_equal", a, b)
        if op == "!=":
            return ast.UnaryOp(ast.Not(), _call("_equal", a, b))
        return _call("_order", _const(op), a, b, _const(pos))

    def gen_Member(self, node: Member) -> ast.expr:
        if node.values_type is T.NONE:
            return _const(node.negate)  # `x in []`
        values = _const(frozenset(node.values))
        operand = node.operand
        if operand.type is T.ANY:
            helper = "_in_texts" if node.values_type is T.STR else "_in_numbers"
            test: ast.expr = _call(helper, self.expr(operand), values)
            return ast.UnaryOp(ast.Not(), test) if node.negate else test
        value = self.number(operand) if node.values_type is T.NUM else self.expr(operand)
        return ast.Compare(value, [ast.NotIn() if node.negate else ast.In()], [values])

    def gen_Arith(self, node: Arith) -> ast.expr:
        left, right = self.number(node.left), self.number(node.right)
        if node.op in _DIV:
            return _call(_DIV[node.op], left, right)
        return ast.BinOp(left, _BIN[node.op](), right)

    def gen_Neg(self, node: Neg) -> ast.expr:
        return ast.UnaryOp(ast.USub(), self.number(node.operand))

    def gen_IfElse(self, node: IfElse) -> ast.expr:
        branches = (self.number(n) if node.type is T.NUM else self.expr(n) for n in (node.then, node.orelse))
        return ast.IfExp(self.truth(node.cond), *branches)

    def gen_Func(self, node: Func) -> ast.expr:
        if node.name in ("min", "max"):
            return _call("_minimum" if node.name == "min" else "_maximum", *map(self.number, node.args))
        if node.name == "abs":
            return _call("_absolute", self.number(node.args[0]))
        if node.name == "round":
            return _call("_round_half_even", self.number(node.args[0]), _const(node.digits))
        if node.name == "coalesce":
            values = (self.number(a) if node.type is T.NUM else self.expr(a) for a in node.args)
            return _call("_coalesce", *values)
        if node.name == "is_missing":
            return _call("_missing", self.expr(node.args[0]))
        return _call("_contains", *map(self.expr, node.args), _const(node.pos))

    # --- conversions ---------------------------------------------------------------------------------------
    def number(self, node: Node) -> ast.expr:
        """The node's value as a float (bools as 1/0, missing as NaN); unknown types checked at runtime."""
        if isinstance(node, Const) and node.type is not T.STR:
            return _const(math.nan if node.value is None else float(node.value))
        return self.as_number(self.expr(node), node.type, node.pos)

    def as_number(self, value: ast.expr, kind: T, pos: int | None = None) -> ast.expr:
        if kind is T.NUM:
            return value
        if kind is T.BOOL:
            return _call("_bool_number", value)
        if kind is T.NONE:
            return _const(math.nan)
        return _call("_to_number", value, _const(pos))

    def truth(self, node: Node) -> ast.expr:
        """The node's truth as a real bool."""
        value = self.expr(node)
        if is_pure_bool(node):
            return value
        if node.type is T.BOOL:
            return ast.Compare(value, [ast.Is()], [_const(True)])
        if node.type is T.NUM and isinstance(value, ast.Name):
            nonzero = ast.Compare(value, [ast.NotEq()], [_const(0.0)])
            return ast.BoolOp(ast.And(), [nonzero, ast.Compare(value, [ast.Eq()], [value])])
        return _call("_truth", value)

    def result_number(self, node: Node) -> ast.expr:
        if node.type is T.ANY:
            return _call("_number_result", self.expr(node), _const(node.pos))
        return self.number(node)
