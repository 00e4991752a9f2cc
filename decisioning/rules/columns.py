"""Vectorised values: how input columns are normalised, and the column type for values of unknown type.

Representations (each an ndarray of length n):
- number: float64, NaN for missing;
- bool: a bool array (never missing) or float64 1.0 / 0.0 / NaN (when it may be missing);
- text: an object array of str, None for missing;
- unknown type (`Dyn`): a float64 part (numbers and bools as 1/0; NaN for text and missing rows) plus,
  when some rows hold text, an object part and a mask of those rows.
Inputs are normalised exactly as `decisioning.rules.scalar` reads single values, so that both modes see
the same values; a value the online reader would refuse makes the whole column a RuleError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.rules.errors import RuleError
from decisioning.rules.ir import T

Array = np.ndarray
_NUMBER_TYPES = (int, float, np.integer, np.floating)
_BOOL_TYPES = (bool, np.bool_)


@dataclass(frozen=True, slots=True)
class Dyn:
    """A column of values of unknown type. `text`/`is_text` are None when no row holds text."""

    num: Array
    text: Array | None = None
    is_text: Array | None = None

    def missing(self) -> Array:
        gap = np.isnan(self.num)
        return gap if self.is_text is None else gap & ~self.is_text

    def where(self, mask: Array, other: Dyn) -> Dyn:
        """Rows of self where `mask`, of `other` elsewhere."""
        num = np.where(mask, self.num, other.num)
        if self.is_text is None and other.is_text is None:
            return Dyn(num)
        n = len(mask)
        text = np.where(mask, _text_or_none(self, n), _text_or_none(other, n))
        is_text = np.where(mask, _text_mask(self, n), _text_mask(other, n))
        return Dyn(num, text, is_text)


def _text_or_none(d: Dyn, n: int) -> Array:
    return d.text if d.text is not None else np.full(n, None, dtype=object)


def _text_mask(d: Dyn, n: int) -> Array:
    return d.is_text if d.is_text is not None else np.zeros(n, dtype=bool)


def bind(value: object, name: str, kind: T, n: int) -> Array | Dyn:
    """Normalise one input column (or a scalar, broadcast to n rows) to the representation of `kind`.

    >>> bind(np.array([1, 2]), "age", T.NUM, 2)
    array([1., 2.])
    """
    if isinstance(value, np.ndarray):
        if value.shape != (n,):
            raise RuleError(f"column '{name}' has shape {value.shape}, expected ({n},)")
        return _BINDERS[kind](value, name)
    return _BINDERS[kind](_broadcast(value, name, n), name)


def _broadcast(value: object, name: str, n: int) -> Array:
    if isinstance(value, _BOOL_TYPES):
        return np.full(n, bool(value), dtype=bool)
    if value is None or isinstance(value, str):
        return np.full(n, value, dtype=object)
    if isinstance(value, _NUMBER_TYPES):
        return np.full(n, _float(value, name), dtype=np.float64)
    raise RuleError(f"'{name}' holds an unsupported value {value!r:.40}")


def _float(value: object, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise RuleError(f"'{name}' holds a number too large: {value!r:.40}") from None


class _TypeCodes(dict):
    """type -> 0 (None), 1 (number or bool), 2 (text), 3 (unsupported); filled as types are met."""

    def __missing__(self, t: type) -> int:
        if t is type(None):
            code = 0
        else:
            code = 1 if issubclass(t, _NUMBER_TYPES + _BOOL_TYPES) else 2 if issubclass(t, str) else 3
        self[t] = code
        return code


_TYPE_CODES = _TypeCodes()


def _kinds(values: Array, name: str) -> tuple[Array, Array]:
    """For an object column: masks of its text rows and of its number/bool rows (the rest are None)."""
    codes = np.fromiter(map(_TYPE_CODES.__getitem__, map(type, values)), dtype=np.int8, count=len(values))
    if (codes == 3).any():
        raise RuleError(f"'{name}' holds an unsupported value {values[(codes == 3).argmax()]!r:.40}")
    return codes == 2, codes == 1


def _object_numbers(values: Array, is_number: Array, name: str) -> Array:
    out = np.full(len(values), np.nan)
    if is_number.any():
        out[is_number] = [_float(v, name) for v in values[is_number]]
    return out


def _bind_number(values: Array, name: str) -> Array:
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    if values.dtype.kind != "O":
        raise RuleError(f"'{name}' should be numbers, not {values.dtype} values")
    is_text, is_number = _kinds(values, name)
    if is_text.any():
        raise RuleError(f"'{name}' should be a number, not {values[is_text.argmax()]!r:.40}")
    return _object_numbers(values, is_number, name)


def _bind_bool(values: Array, name: str) -> Array:
    if values.dtype.kind == "b":
        return values
    numbers = _bind_number(values, name)  # bools stay 1/0; numbers become their truth; NaN stays missing
    return np.where(np.isnan(numbers), np.nan, (numbers != 0).astype(np.float64))


def _bind_text(values: Array, name: str) -> Array:
    if values.dtype.kind == "U":
        return values.astype(object)
    if values.dtype.kind == "f" and np.isnan(values).all():
        return np.full(len(values), None, dtype=object)
    if values.dtype.kind != "O":
        raise RuleError(f"'{name}' should be text, not {values.dtype} values")
    is_text, is_number = _kinds(values, name)
    numbers = _object_numbers(values, is_number, name)
    wrong = is_number & ~np.isnan(numbers)  # NaN is how some tools spell a missing string: allowed
    if wrong.any():
        raise RuleError(f"'{name}' should be text, not {values[wrong.argmax()]!r:.40}")
    return np.where(is_text, _exact_str(values, is_text), None)


def _exact_str(values: Array, is_text: Array) -> Array:
    out = values.copy()
    out[is_text] = [str(v) for v in values[is_text]]  # str subclasses (np.str_) compare like str
    return out


def _bind_any(values: Array, name: str) -> Dyn:
    if values.dtype.kind in "fiub":
        return Dyn(values.astype(np.float64, copy=False))
    if values.dtype.kind == "U":
        return Dyn(np.full(len(values), np.nan), values.astype(object), np.ones(len(values), dtype=bool))
    if values.dtype.kind != "O":
        raise RuleError(f"'{name}' holds unsupported {values.dtype} values")
    is_text, is_number = _kinds(values, name)
    numbers = _object_numbers(values, is_number, name)
    if not is_text.any():
        return Dyn(numbers)
    return Dyn(numbers, np.where(is_text, _exact_str(values, is_text), None), is_text)


_BINDERS = {T.NUM: _bind_number, T.BOOL: _bind_bool, T.STR: _bind_text, T.ANY: _bind_any}
