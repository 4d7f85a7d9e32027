"""Language of a text as an ISO 639-1 code: script first, then stop-word counts."""

from __future__ import annotations

import re
from functools import lru_cache

import justext

# ISO 639-1 code -> jusText stop-list name, for the languages told apart by stop words.
STOPLIST_NAMES: dict[str, str] = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian_Bokmal", "fi": "Finnish", "pl": "Polish", "cs": "Czech", "sk": "Slovak",
    "ro": "Romanian", "hu": "Hungarian", "tr": "Turkish", "id": "Indonesian", "ms": "Malay",
    "ru": "Russian", "uk": "Ukrainian", "bg": "Bulgarian", "sr": "Serbian", "el": "Greek",
    "ca": "Catalan", "hr": "Croatian", "sl": "Slovenian", "vi": "Vietnamese", "tl": "Tagalog",
    "sw": "Swahili", "et": "Estonian", "lv": "Latvian", "lt": "Lithuanian", "ar": "Arabic",
    "fa": "Persian", "ur": "Urdu", "he": "Hebrew", "hi": "Hindi", "ko": "Korean",
}
_WORD = re.compile(r"\w+", re.UNICODE)
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
)
_LATIN_LIKE = ("ar", "fa", "ur")


@lru_cache(maxsize=64)
def stopwords(code: str | None) -> frozenset[str]:
    """Lower-case stop words of a language (empty for unknown codes)."""
    name = STOPLIST_NAMES.get((code or "").lower()[:2])
    if not name:
        return frozenset()
    try:
        return frozenset(w.lower() for w in justext.get_stoplist(name))
    except (ValueError, OSError):
        return frozenset()


def normalize_code(value: str | None) -> str | None:
    """'en-US', 'pt_BR', 'EN' -> 'en'; None when it is not a plausible language tag."""
    if not value:
        return None
    code = re.split(r"[-_;,\s]", value.strip().lower(), maxsplit=1)[0]
    return code if re.fullmatch(r"[a-z]{2}", code) else None


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` from its script and stop words; None when unsure."""
    sample = text[:20000]
    letters = sum(1 for c in sample if c.isalpha()) or 1
    ja = len(_SCRIPTS[0][1].findall(sample))
    if ja / letters > 0.05:
        return "ja"
    for code, pattern in _SCRIPTS[1:]:
        if len(pattern.findall(sample)) / letters > 0.3:
            return code
    words = [w.lower() for w in _WORD.findall(sample) if not w.isdigit()]
    if len(words) < 5:
        return None
    best, best_ratio = None, 0.0
    for code in STOPLIST_NAMES:
        if code in ("ko", "he", "hi"):
            continue
        stops = stopwords(code)
        ratio = sum(1 for w in words if w in stops) / len(words)
        if ratio > best_ratio:
            best, best_ratio = code, ratio
        if ratio >= 0.3:  # clear enough: the most common languages come first
            break
    return best if best_ratio >= 0.12 else None
