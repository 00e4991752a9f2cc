"""The safe rule language of the catalogue: eligibility, values, segment and event conditions.

Rules are a small subset of Python expressions, written by marketers in YAML. A rule is parsed with
`ast.parse`, every construct is whitelisted and type-checked against the feature schema, and the checked
tree is compiled twice: into one Python function for the online path (no rule text is ever evaluated;
the generated code runs with empty builtins) and into numpy column operations for the batch. The two
agree exactly (see tests/unit/test_rules_properties.py).

>>> rule = compile_rule("18 <= age < 65 and segment in ['mass', 'affluent']",
...                     features={"age": "number", "segment": "category"})
>>> rule.evaluate(RuleEnv({"age": 30, "segment": "mass"}, Context("web", now=0.0)))
True

Semantics in brief: a missing number is NaN and a missing category None; comparisons with a missing
operand are False (`!=`: True); truth is True, a number neither 0 nor NaN, or a non-empty string;
`and`/`or` give bools; division or modulo by zero gives NaN; `round` is half-to-even as `np.round`.
"""

from decisioning.rules.compiled import CompiledRule, RuleEnv, compile_rule
from decisioning.rules.errors import RuleError
from decisioning.rules.history_calls import HistoryCall, history_columns
from decisioning.types import Context

__all__ = [
    "CompiledRule", "Context", "HistoryCall", "RuleEnv", "RuleError", "compile_rule", "history_columns",
]
