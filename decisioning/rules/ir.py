"""The checked, typed tree a rule compiles to, before either evaluator is built from it.

The checker turns Python's `ast` into these nodes only after every construct has been whitelisted and
type-checked; the online and vectorised evaluators are generated from these nodes, never from the text.
Every node carries its static type and the 1-based column of its source, for runtime error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decisioning.rules.history_calls import HistoryCall


class T(StrEnum):
    """Static types. ANY is a value whose type is only known at evaluation (context attributes, event
    attributes read without a schema); NONE is the literal `None`, compatible with every type."""

    NUM = "number"
    BOOL = "bool"
    STR = "string"
    ANY = "any"
    NONE = "none"


NUMERIC = frozenset({T.NUM, T.BOOL})  # a bool is a number (1 or 0) in arithmetic and ordering


@dataclass(frozen=True, slots=True)
class Const:
    value: float | str | bool | None
    type: T
    pos: int | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """A value read from the environment: `key` is also its column key in vectorised mode."""

    key: str
    source: str  # "feature", "context" (channel, placement, intent, now) or "attribute" (context('k'))
    type: T
    pos: int | None = None


@dataclass(frozen=True, slots=True)
class Hist:
    call: HistoryCall
    pos: int | None = None
    type: T = T.NUM


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int | None = None
    type: T = T.BOOL


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]
    pos: int | None = None
    type: T = T.BOOL


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison chain `a < b <= c`: each middle operand is evaluated once, later links lazily."""

    ops: tuple[str, ...]  # "==", "!=", "<", "<=", ">", ">="
    operands: tuple[Node, ...]
    pos: int | None = None
    type: T = T.BOOL


@dataclass(frozen=True, slots=True)
class Member:
    """`x in [...]` / `x not in [...]` against a literal collection of numbers or of strings."""

    operand: Node
    values: tuple[float, ...] | tuple[str, ...]
    values_type: T
    negate: bool
    pos: int | None = None
    type: T = T.BOOL


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # "+", "-", "*", "/", "%"
    left: Node
    right: Node
    pos: int | None = None
    type: T = T.NUM


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node
    pos: int | None = None
    type: T = T.NUM


@dataclass(frozen=True, slots=True)
class IfElse:
    cond: Node
    then: Node
    orelse: Node
    type: T
    pos: int | None = None


@dataclass(frozen=True, slots=True)
class Func:
    """A whitelisted function: min, max, abs, round (with `digits`), coalesce, is_missing, contains."""

    name: str
    args: tuple[Node, ...]
    type: T
    pos: int | None = None
    digits: int = 0


Node = Const | Read | Hist | Not | BoolOp | Compare | Member | Arith | Neg | IfElse | Func

PURE_BOOL = (Not, BoolOp, Compare, Member)  # nodes whose value is always a real bool, never missing


def is_pure_bool(node: Node) -> bool:
    """True when the node always yields True or False (never a missing value, never a number)."""
    if isinstance(node, PURE_BOOL):
        return True
    if isinstance(node, Func):
        return node.name in ("is_missing", "contains")
    return isinstance(node, Const) and isinstance(node.value, bool)


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes, in evaluation order."""
    match node:
        case Not(operand=x) | Neg(operand=x) | Member(operand=x):
            return (x,)
        case BoolOp(items=items) | Compare(operands=items) | Func(args=items):
            return items
        case Arith(left=a, right=b):
            return (a, b)
        case IfElse(cond=c, then=a, orelse=b):
            return (c, a, b)
    return ()


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children, left to right."""
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(children(current)))
    return out
