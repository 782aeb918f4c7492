"""What changed in a chatbot's languages since a channel's previous digest.

Pure and small on purpose: `bot/slack/blocks.py` renders a `Changes`, the service
computes one from the snapshot stored for the channel. Tags are compared as
Desk returns them (opaque strings, never normalised), so `zh` -> `zh-CN` is a
removal plus an addition, which is what the chatbot's configuration did.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.desk.models import Language, LanguageList


@dataclass(frozen=True)
class Changes:
    """The difference between the list a channel saw last and the list it sees now.

    `first` is True when the channel has never been shown a digest (nothing to compare).
    """

    added: tuple[Language, ...] = ()
    removed: tuple[Language, ...] = ()
    default_before: Language | None = None
    default_after: Language | None = None
    first: bool = False

    @property
    def default_changed(self) -> bool:
        before = self.default_before.tag if self.default_before else None
        after = self.default_after.tag if self.default_after else None
        return not self.first and before != after

    @property
    def none(self) -> bool:
        """True when there is a previous digest and nothing differs from it."""
        return not self.first and not self.added and not self.removed and not self.default_changed


def diff(previous: LanguageList | None, current: LanguageList) -> Changes:
    """Compare two lists; `previous` is None for a channel's first digest."""
    if previous is None:
        return Changes(default_after=current.default, first=True)
    before = {lang.tag for lang in previous.languages}
    after = {lang.tag for lang in current.languages}
    return Changes(
        added=tuple(lang for lang in current.languages if lang.tag not in before),
        removed=tuple(lang for lang in previous.languages if lang.tag not in after),
        default_before=previous.default,
        default_after=current.default,
    )
