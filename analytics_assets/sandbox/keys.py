"""Segment keys, generated lazily.

A segment's key list in one environment is never stored. It is a window ``[start, end)`` over
an endless, deterministic sequence of distinct keys belonging to that (environment, segment)
pair; evolving the organisation moves the window (keys deleted at the front, keys appended at
the back). Any key is therefore a pure function of (seed, environment, segment, generation,
index), and serving or streaming millions of keys needs no memory beyond one page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

# Realistic shapes, including apostrophes, spaces and non-ASCII text (contract §2.6 shows keys
# like "Annie's Apples"), so clients are exercised on quoting and encoding.
_KEY_SHAPES: tuple[tuple[str, str], ...] = (
    ("user_", ""),
    ("Annie's Apples #", ""),
    ("zoë.", "@example.com"),
    ("用户-", ""),
    ("O'Brien & Sons ", ""),
    ("acct-", ""),
    ("Müller Straße ", ""),
    ("device:", ""),
    ("São Paulo store ", ""),
    ("", "-tenant"),
    ("naïve café ", ""),
    ("Clark's Mountain ", ""),
)

_MODULUS = 10**9
"""Keys carry a 9-digit number; an affine map modulo 10^9 keeps them distinct."""


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class KeySequence:
    """The keys of one segment in one environment: a window over an endless key sequence.

    ``salt`` identifies the (seed, environment, segment) pair; ``start``/``end`` are absolute
    positions in that pair's sequence, so moving them adds or deletes keys without
    disturbing the others.
    """

    salt: str
    start: int = 0
    end: int = 0

    def __len__(self) -> int:
        return self.end - self.start

    @cached_property
    def _mixing(self) -> tuple[int, int, int]:
        mixer = _digest(self.salt)
        shape_offset = mixer % len(_KEY_SHAPES)
        # A multiplier ending in 7 is coprime to 10^9, so the map below is injective.
        multiplier = (mixer >> 8) % _MODULUS
        multiplier = multiplier - multiplier % 10 + 7
        addend = (mixer >> 40) % _MODULUS
        return shape_offset, multiplier, addend

    def key_at(self, position: int) -> str:
        """The key at absolute ``position`` of the endless sequence."""
        shape_offset, multiplier, addend = self._mixing
        prefix, suffix = _KEY_SHAPES[(position + shape_offset) % len(_KEY_SHAPES)]
        number = (position * multiplier + addend) % _MODULUS
        return f"{prefix}{number:09d}{suffix}"

    def page(self, offset: int, limit: int) -> list[str]:
        """Keys ``offset .. offset+limit`` of the current window (fewer at the end)."""
        first = self.start + max(offset, 0)
        last = min(first + limit, self.end)
        return [self.key_at(position) for position in range(first, last)]

    def __iter__(self) -> Iterator[str]:
        for position in range(self.start, self.end):
            yield self.key_at(position)

    def moved(self, deleted_front: int, appended_back: int) -> KeySequence:
        """The same sequence after deleting keys at the front and appending keys at the back."""
        deleted_front = min(max(deleted_front, 0), len(self))
        return KeySequence(self.salt, self.start + deleted_front, self.end + appended_back)
