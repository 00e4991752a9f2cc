"""The one error the rule language raises: what is wrong, where in the expression, and in which file."""

from __future__ import annotations

from typing import Any


class RuleError(ValueError):
    """A rule that cannot be compiled or evaluated.

    `position` is the 1-based column in `expression` when known; `where` names the rule's place in the
    catalogue and is filled in by loaders with `at()`.

    >>> err = RuleError("unknown feature 'agee'", expression="agee >= 18", position=1)
    >>> print(err.at("offers.yaml: offer card_gold: eligibility rule 'adult'"))
    offers.yaml: offer card_gold: eligibility rule 'adult': unknown feature 'agee' (column 1): agee >= 18
                                                                                               ^
    """

    def __init__(
        self, message: str, expression: str = "", position: int | None = None, where: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.position = position
        self.where = where

    def at(self, where: str) -> RuleError:
        """A copy of this error located at `where` (e.g. "offers.yaml: offer x: eligibility rule 'adult'")."""
        return _copy(self, where=where)

    def with_expression(self, expression: str, position: int | None = None) -> RuleError:
        """A copy naming the expression (and the column, unless this error already knows one)."""
        return _copy(self, expression=expression, position=self.position if self.position else position)

    def __str__(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        if not self.expression:
            return head
        if self.position is None:
            return f"{head}: {self.expression}"
        prefix = f"{head} (column {self.position}): "
        return f"{prefix}{self.expression}\n{' ' * (len(prefix) + self.position - 1)}^"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries in distributed batch runs; keep every field.
        return (RuleError, (self.message, self.expression, self.position, self.where))


def _fields(err: RuleError) -> tuple[str, str, int | None, str]:
    return (err.message, err.expression, err.position, err.where)


def _copy(err: RuleError, **changes: Any) -> RuleError:
    fields = dict(zip(("message", "expression", "position", "where"), _fields(err), strict=True))
    fields.update(changes)
    copy = RuleError(**fields)
    copy.__cause__ = err.__cause__
    return copy
