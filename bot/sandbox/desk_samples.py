"""What the Desk emulator (`bot/sandbox/desk_emulator.py`) starts with: languages, FAQ and chatbot settings.

A `Sample` is one made-up Desk app, within its edition's limit of languages (5 in the advanced
edition, the default included, docs/desk-api.md §8). `"default"` is what `DESK_SANDBOX=1` shows:
five languages, three of them ready to serve, Vietnamese with its welcome card off and Filipino
with no fallback message, so a status view has something to fix. `"staging"` is a smaller app
with room for two more languages whose default language has the empty tag of Tencent's own
example (§3.2).

Settings use Desk's own field names (docs/desk-api.md §9.2), with the thresholds as strings the
way the documentation types them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT

LIVE, DISABLED = 4, 5  # list_faq's Status values (docs/desk-api.md §9.1)


@dataclass(frozen=True)
class FaqQuestion:
    """One standard question of a language's FAQ library, with its similar questions."""

    question: str
    answer: str = "See the help centre."
    status: int = LIVE
    similar: tuple[str, ...] = ()
    category_id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not isinstance(self.answer, str):
            raise ValueError("question and answer must be strings")
        if self.status not in (LIVE, DISABLED):
            raise ValueError("status must be 4 (in effect) or 5 (disabled)")
        if not all(isinstance(text, str) for text in self.similar):
            raise ValueError("similar questions must be strings")
        if isinstance(self.category_id, bool) or not isinstance(self.category_id, int):
            raise ValueError("category_id must be an integer")

    @classmethod
    def from_desk(cls, item: Mapping[str, Any]) -> FaqQuestion:
        """From Desk's field names (`StandardQuestion`, `Status`, `SimilarQuestions`, …)."""
        if not isinstance(item, Mapping):
            raise ValueError("a question must be an object")
        similar = item.get("SimilarQuestions") or []
        if not isinstance(similar, list):
            raise ValueError("SimilarQuestions must be a list of strings")
        return cls(
            question=item.get("StandardQuestion", ""),
            answer=item.get("Answer", cls.answer),
            status=item.get("Status", LIVE),
            similar=tuple(similar),
            category_id=item.get("CategoryId", 0),
        )

    def to_desk(self, question_id: str) -> dict[str, Any]:
        """As `list_faq` lists it (docs/desk-api.md §9.1)."""
        return {
            "StandardQuestionId": question_id,
            "StandardQuestion": self.question,
            "Status": self.status,
            "CategoryId": self.category_id,
            "Answer": self.answer,
            "AnswerType": 0,
            "QuestionType": 0,
            "SimilarQuestions": list(self.similar),
        }


# A language set up in the console: welcome card with questions, a fallback message.
CONFIGURED_SETTINGS: Mapping[str, Any] = {
    "WelcomeCardEnable": 1,
    "WelcomeCardTitle": "Hi! How can we help?",
    "WelcomeCardQuestions": ["Where is my order?", "How do I reset my password?", "Talk to a person"],
    "ToAgentEnable": 1,
    "DirectAnsweringReaches": "0.8",
    "ChitchatEnable": 1,
    "ChitchatReaches": "0.7",
    "ClarifyEnable": 1,
    "ClarifyReaches": "0.6",
    "ClarifyMessage": "Did you mean:",
    "ClarifyNumber": 3,
    "FallbackMsg": "Sorry, I did not understand that. Try other words, or ask for a person.",
}

# A language just added with robot_add_language: nothing set up yet.
NEW_LANGUAGE_SETTINGS: Mapping[str, Any] = {
    **CONFIGURED_SETTINGS,
    "WelcomeCardEnable": 0,
    "WelcomeCardTitle": "",
    "WelcomeCardQuestions": [],
    "ClarifyMessage": "",
    "FallbackMsg": "",
}


def questions(tag: str, live: int, disabled: int = 0) -> tuple[FaqQuestion, ...]:
    """`live` questions in effect and `disabled` ones, each with one similar question."""
    made = [
        FaqQuestion(f"Question {number} ({tag or 'default'})", similar=(f"Same as question {number}?",))
        for number in range(1, live + 1)
    ]
    made += [
        FaqQuestion(f"Old question {number} ({tag or 'default'})", status=DISABLED)
        for number in range(1, disabled + 1)
    ]
    return tuple(made)


@dataclass(frozen=True)
class Sample:
    """One made-up Desk app: its languages, FAQ and settings per tag, and its edition."""

    languages: tuple[tuple[str, int], ...]
    faq: Mapping[str, tuple[FaqQuestion, ...]] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # over CONFIGURED_SETTINGS
    language_limit: int = ADVANCED_EDITION_LANGUAGE_LIMIT
    multilingual: bool = True

    def __post_init__(self) -> None:
        if len(self.languages) > self.language_limit:
            raise ValueError(
                f"{len(self.languages)} languages, over the edition's limit of {self.language_limit} "
                "(the default included), which Desk would not allow"
            )


SAMPLES: Mapping[str, Sample] = {
    "default": Sample(
        languages=(("en", 1), ("zh", 0), ("ja", 0), ("vi", 0), ("fil", 0)),
        faq={
            "en": questions("en", 12, disabled=1),
            "zh": questions("zh", 10),
            "ja": questions("ja", 7),
            "vi": questions("vi", 6, disabled=2),
            "fil": questions("fil", 6),
        },
        settings={"vi": {"WelcomeCardEnable": 0}, "fil": {"FallbackMsg": ""}},
    ),
    "staging": Sample(
        languages=(("", 1), ("en", 0), ("ja", 0)),
        faq={"": questions("", 4), "en": questions("en", 4), "ja": questions("ja", 1)},
        settings={"ja": {"WelcomeCardEnable": 0}},
    ),
}
