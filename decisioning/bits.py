"""Sets of offers as the bits of a Python int: offer i of a list is bit i (see `decisioning.plan`)."""

from __future__ import annotations

from collections.abc import Iterator


def indices(bits: int) -> Iterator[int]:
    """The positions of the set bits, lowest first.

    >>> list(indices(0b1010))
    [1, 3]
    """
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low
