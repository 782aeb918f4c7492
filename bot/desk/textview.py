"""Plain-text rendering of a language list, for the terminal (`python -m bot languages`)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.desk.models import LanguageList


def languages_table(lst: LanguageList) -> str:
    rows = [(lang.tag or "(none)", lang.name, "yes" if lang.is_default else "") for lang in lst.languages]
    header = ("TAG", "NAME", "DEFAULT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    when = datetime.fromtimestamp(lst.fetched_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    count = len(lst.languages)
    lines.append("")
    lines.append(
        f"{count} language{'s' if count != 1 else ''}; default: "
        + (f"{lst.default.name} ({lst.default.tag or 'no tag'})" if lst.default else "none set")
        + f"; fetched {when}{' (cached)' if lst.from_cache else ''}"
    )
    return "\n".join(lines)
