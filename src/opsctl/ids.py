"""Identifiers people type at 3 a.m.: a prefix and 8 characters of Crockford's base32.

40 random bits (``INC-7K2P9QXM``): a collision is unlikely before about a million ids, and
callers that insert them retry on a conflict anyway.  No I, L, O or U, so nothing reads
as a digit; input is case-insensitive and accepts the look-alikes.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_id(prefix: str) -> str:
    value = secrets.randbits(5 * LENGTH)
    chars = [ALPHABET[(value >> (5 * i)) & 31] for i in range(LENGTH)]
    return f"{prefix}-{''.join(chars)}"


def normalise(text: str, prefix: str) -> str:
    """What a person typed, as stored: upper case, look-alikes mapped, the prefix added."""
    value = text.strip().upper()
    head, sep, tail = value.partition("-")
    if sep and head == prefix:
        value = tail
    if len(value) == LENGTH:
        value = value.translate(_LOOKALIKES)
    return f"{prefix}-{value}"
