"""A value that must never be printed: passwords, tokens, passphrases, keys."""

from __future__ import annotations

from typing import Final

_MASK: Final = "******"


class Secret:
    """Wraps a secret string so that repr/str/format/logging never show it.

    Call `reveal()` only where the value leaves the process on purpose (an HTTP header,
    a key-derivation function, a 0600 file).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:  # pragma: no cover - refuse pickling a secret by accident
        raise TypeError("Secret values cannot be pickled")
