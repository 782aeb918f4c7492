"""A settable clock for code that takes one (a `now` or `timer` callable): tests move time by hand."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Dial(Generic[T]):
    """A clock that says `value` until a test sets another."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __call__(self) -> T:
        return self.value
