"""From rule text to the typed tree: parse, whitelist every construct, check types, bound the cost.

Nothing here evaluates anything: the text is parsed by `ast.parse(mode="eval")` and only the node types
below are accepted. Anything else is a RuleError that names the construct and its column.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from decisioning.rules import functions
from decisioning.rules.errors import RuleError
from decisioning.rules.history_calls import HistoryCall
from decisioning.rules.ir import (
    Arith,
    BoolOp,
    Compare,
    Const,
    Hist,
    IfElse,
    Member,
    Neg,
    Node,
    Not,
    Read,
    T,
    walk,
)
from decisioning.rules.typecheck import check_comparable, check_numeric, unify

MAX_TEXT = 4000
MAX_NODES = 500
MAX_DEPTH = 48
MAX_STRING = 1000
MAX_ITEMS = 1000
MAX_NUMBER = 1e300
CONTEXT_NAMES = {"channel": T.STR, "placement": T.STR, "intent": T.STR, "now": T.NUM}
FEATURE_TYPES = {"number": T.NUM, "bool": T.BOOL, "category": T.STR}
_BLANKS = str.maketrans("\n\r\t\f\v", "     ")

_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FORBIDDEN_OPS = {
    ast.Pow: "'**'", ast.FloorDiv: "'//'", ast.MatMult: "'@'", ast.LShift: "'<<'", ast.RShift: "'>>'",
    ast.BitOr: "'|'", ast.BitAnd: "'&'", ast.BitXor: "'^'", ast.Invert: "'~'", ast.UAdd: "unary '+'",
    ast.Is: "'is'", ast.IsNot: "'is not'",
}
_CONSTRUCTS = {
    ast.Attribute: "attribute access ('.')", ast.Subscript: "subscript ('[...]')",
    ast.Lambda: "lambda", ast.ListComp: "comprehension", ast.SetComp: "comprehension",
    ast.DictComp: "comprehension", ast.GeneratorExp: "comprehension", ast.Dict: "dict",
    ast.JoinedStr: "f-string", ast.FormattedValue: "f-string", ast.NamedExpr: "':='",
    ast.Starred: "'*' unpacking", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "slice", ast.List: "list", ast.Tuple: "tuple", ast.Set: "set",
}


@dataclass(frozen=True)
class Checked:
    """A checked rule: its typed tree and what it reads."""

    root: Node
    names: tuple[str, ...]  # feature names read
    inputs: tuple[str, ...]  # every column key the vectorised evaluator needs
    history_calls: tuple[HistoryCall, ...]


def check(text: str, features: Mapping[str, str] | None) -> Checked:
    """Parse and check `text`; raise RuleError (with column) on anything not in the language.

    >>> check("age >= 18", {"age": "number"}).names
    ('age',)
    """
    if len(text) > MAX_TEXT:
        raise RuleError(f"rule is too long ({len(text)} characters, at most {MAX_TEXT})")
    # Line breaks are spaces (rules may span lines in YAML); leading blanks are skipped, not indentation.
    flat = flatten(text)
    body = flat.lstrip()
    lead = len(flat) - len(body)
    if not body:
        raise RuleError("rule is empty")
    try:
        tree = parse(body)
    except RuleError as err:
        raise RuleError(err.message, position=err.position and err.position + lead) from None
    root = Checker(body, features, lead).visit(tree.body, 0)
    return _summarise(root)


def flatten(text: str) -> str:
    """The rule text as errors show it: line breaks and tabs as spaces, so a caret lines up."""
    return text.translate(_BLANKS)


def parse(text: str) -> ast.Expression:
    """`ast.parse` under the language's size limits; every parser failure becomes a RuleError."""
    try:
        tree = ast.parse(text, filename="<rule text>", mode="eval")  # only ever an AST: see online.py
    except SyntaxError as err:
        # offset 0: the parser ran off the end of the text ("age >"); point there.
        position = None if err.offset is None else min(err.offset or len(text) + 1, len(text) + 1)
        raise RuleError(f"syntax error: {err.msg}", position=position) from None
    except (RecursionError, MemoryError) as err:
        raise RuleError(f"rule is nested too deeply to parse ({type(err).__name__})") from None
    except ValueError as err:
        raise RuleError(f"cannot parse the rule: {err}") from None
    nodes = _count_nodes(tree)
    if nodes > MAX_NODES:
        raise RuleError(f"rule is too complex ({nodes} parts, at most {MAX_NODES})")
    return tree


def _count_nodes(tree: ast.AST) -> int:
    # A literal list counts once: `segment in [...1000 names...]` is cheap, however long.
    count, stack = 0, [tree]
    while stack:
        node = stack.pop()
        count += 1
        if not (isinstance(node, ast.List | ast.Tuple | ast.Set) and all(map(_is_literal, node.elts))):
            stack.extend(ast.iter_child_nodes(node))
    return count


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant)


def _summarise(root: Node) -> Checked:
    reads = [n for n in walk(root) if isinstance(n, Read | Hist)]
    calls = {n.call.key: n.call for n in reads if isinstance(n, Hist)}
    names = dict.fromkeys(n.key for n in reads if isinstance(n, Read) and n.source == "feature")
    inputs = dict.fromkeys(n.key if isinstance(n, Read) else n.call.key for n in reads)
    return Checked(root, tuple(names), tuple(inputs), tuple(calls.values()))


class Checker:
    """Visits a parsed rule and builds its typed tree (see `decisioning.rules.ir`)."""

    def __init__(self, text: str, features: Mapping[str, str] | None, lead: int = 0) -> None:
        self.text = text
        self._bytes = text.encode()
        self.features = features
        self.lead = lead  # blanks stripped before parsing

    def col(self, node: ast.AST) -> int:
        """1-based column of a node in the rule text (the parser reports UTF-8 byte offsets)."""
        offset = getattr(node, "col_offset", 0)
        return self.lead + len(self._bytes[:offset].decode("utf-8", errors="ignore")) + 1

    def error(self, message: str, node: ast.AST) -> RuleError:
        return RuleError(message, position=self.col(node))

    def visit(self, node: ast.AST, depth: int) -> Node:
        """The typed node for `node`; `depth` bounds the nesting (and this recursion)."""
        if depth > MAX_DEPTH:
            raise self.error(f"rule is nested too deeply (more than {MAX_DEPTH} levels)", node)
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise self.error(f"{_describe(node)} is not allowed", node)
        return method(node, depth + 1)

    def visit_Constant(self, node: ast.Constant, depth: int) -> Node:
        return Const(*self.literal(node.value, node), pos=self.col(node))

    def literal(self, value: object, node: ast.AST) -> tuple[float | str | bool | None, T]:
        """A literal's value (ints become floats) and type, within the language's bounds."""
        if value is None or isinstance(value, bool):
            return value, T.NONE if value is None else T.BOOL
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                size = f"{len(value)} characters, at most {MAX_STRING}"
                raise self.error(f"string literal is too long ({size})", node)
            return value, T.STR
        if isinstance(value, int | float) and not isinstance(value, complex):
            if not -MAX_NUMBER <= value <= MAX_NUMBER:  # also refuses NaN, inf and huge ints
                raise self.error(f"number {_short(value)} is out of range (at most {MAX_NUMBER:g})", node)
            return float(value), T.NUM
        raise self.error(f"{type(value).__name__} literals are not allowed", node)

    def visit_Name(self, node: ast.Name, depth: int) -> Node:
        name, pos = node.id, self.col(node)
        if name in CONTEXT_NAMES:
            return Read(name, "context", CONTEXT_NAMES[name], pos)
        if name.startswith("__"):
            raise self.error(f"name '{name}' is not allowed", node)
        if self.features is None:
            return Read(name, "feature", T.ANY, pos)
        if name not in self.features:
            hint = _suggest(name, [*self.features, *CONTEXT_NAMES])
            raise self.error(f"unknown feature '{name}'{hint}", node)
        declared = str(self.features[name])
        if declared not in FEATURE_TYPES:
            raise self.error(f"feature '{name}' has unknown type '{declared}'", node)
        return Read(name, "feature", FEATURE_TYPES[declared], pos)

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        items: list[Node] = []
        for value in node.values:
            item = self.visit(value, depth)
            # `a and (b and c)` is one flat conjunction: fewer nodes to evaluate.
            items.extend(item.items if isinstance(item, BoolOp) and item.op == op else [item])
        return BoolOp(op, tuple(items), pos=self.col(node))

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Node:
        if isinstance(node.op, ast.Not):
            return Not(self.visit(node.operand, depth), pos=self.col(node))
        if not isinstance(node.op, ast.USub):
            raise self.error(f"operator {_FORBIDDEN_OPS[type(node.op)]} is not allowed", node)
        operand = self.visit(node.operand, depth)
        check_numeric(operand, "'-'")
        if isinstance(operand, Const) and operand.type is T.NUM:
            return Const(-operand.value, T.NUM, pos=self.col(node))  # type: ignore[operator]
        return Neg(operand, pos=self.col(node))

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Node:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.error(f"operator {_FORBIDDEN_OPS[type(node.op)]} is not allowed", node)
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        for operand in (left, right):
            check_numeric(operand, f"'{op}'")
        return Arith(op, left, right, pos=self.col(node))

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> Node:
        cond, then, orelse = (self.visit(n, depth) for n in (node.test, node.body, node.orelse))
        kind = unify((then, orelse), "the two branches of 'if ... else'", self.col(node))
        return IfElse(cond, then, orelse, kind, pos=self.col(node))

    def visit_Compare(self, node: ast.Compare, depth: int) -> Node:
        if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            return self.membership(node, depth)
        for op in node.ops:
            if type(op) not in _COMPARE:
                what = _FORBIDDEN_OPS[type(op)]
                raise self.error(f"operator {what} is not allowed; use == or is_missing(x)", node)
        operands = tuple(self.visit(n, depth) for n in (node.left, *node.comparators))
        ops = tuple(_COMPARE[type(op)] for op in node.ops)
        for op, left, right in zip(ops, operands, operands[1:], strict=False):
            check_comparable(left, right, op)
        return Compare(ops, operands, pos=self.col(node))

    def membership(self, node: ast.Compare, depth: int) -> Node:
        """`x in [literals]` / `x not in [literals]`, alone (not inside a comparison chain)."""
        if len(node.ops) > 1:
            raise self.error("'in' cannot be chained with other comparisons; use 'and'", node)
        target = node.comparators[0]
        if not isinstance(target, ast.List | ast.Tuple | ast.Set):
            raise self.error("the right side of 'in' must be a literal list, e.g. ['gold', 'silver']", target)
        if len(target.elts) > MAX_ITEMS:
            raise self.error(f"list is too long ({len(target.elts)} items, at most {MAX_ITEMS})", target)
        values, kind = self.literal_list(target, depth)
        operand = self.visit(node.left, depth)
        check_comparable(operand, Const(None, kind, pos=self.col(target)), "in")
        return Member(operand, values, kind, isinstance(node.ops[0], ast.NotIn), pos=self.col(node))

    def literal_list(self, node: ast.List | ast.Tuple | ast.Set, depth: int) -> tuple[tuple, T]:
        items = [self.visit(elt, depth) for elt in node.elts]
        kinds = {item.type for item in items}
        literals = all(isinstance(item, Const) for item in items)
        if not literals or not kinds <= {T.NUM, T.STR} or len(kinds) > 1:
            raise self.error("a list after 'in' holds only numbers or only strings, as literals", node)
        values = tuple(dict.fromkeys(item.value for item in items))  # type: ignore[union-attr]
        return values, kinds.pop() if kinds else T.NONE

    def visit_Call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.error(f"only the rule functions can be called, not {_describe(node.func)}", node)
        return functions.check_call(self, node, depth)

    def visit_Expression(self, node: ast.Expression, depth: int) -> Node:
        return self.visit(node.body, depth)

    def visit_List(self, node: ast.List | ast.Tuple | ast.Set, depth: int) -> Node:
        raise self.error(f"a {_describe(node)} is only allowed after 'in', e.g. segment in ['a', 'b']", node)

    visit_Tuple = visit_Set = visit_List


def _describe(node: ast.AST) -> str:
    return _CONSTRUCTS.get(type(node), f"'{type(node).__name__}'")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:20]}..."

