"""Language of a text as an ISO 639-1 code: script first, then stop-word counts."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from itertools import filterfalse

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
# The most frequent function words: what tells languages apart (the full stop lists overlap:
# some hold thousands of words, English ones included).
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and of to in is that for it was with as on be by this are at from have has not"
        " but or an they which he she his her their were been will would",
        "de": "der die das und ist nicht ein eine zu den mit sich des auf für im dem von auch es"
        " an werden aus er hat dass sie nach wird bei einer um wie",
        "fr": "le la les et des est un une du que dans pour pas qui sur au par plus avec ce il"
        " elle sont ont été mais ou leur cette aux nous vous",
        "es": "el la los las y de que en un una es por con para del se no al lo como más pero sus"
        " le ha este esta fue son entre también",
        "it": "il di che e la per un una non sono del della le gli con si da al anche più nel ma"
        " come questo ha alla dei ci essere",
        "pt": "o a os as de que e do da em um uma para com não por se na no mais dos das ao"
        " como mas foi ele ela são também pelo pela",
        "nl": "de het een en van is dat op te in voor niet met zijn er aan ook als maar bij door"
        " worden wordt om nog naar uit",
        "sv": "och att det som en på är av för med till den har inte om ett var jag men så de"
        " från kan vid eller sig",
        "da": "og i at det en den til er som på de med af for ikke der var har et men fra kan"
        " blev eller om skal",
        "no": "og i det som en på er til å av for med har ikke den de et var men om fra kan"
        " eller seg skal ble",
        "fi": "ja on ei se että oli hän ovat mutta kun tai myös kuin joka mitä niin ole sen ja"
        " vain jo nyt sitä tämä",
        "pl": "i w na z się nie do to że jest o jak po co przez dla od tak ale jego są za było"
        " oraz może jej ich",
        "cs": "a se na je že v to s z do o jako by pro ale jsou k po tak od jeho byl které také"
        " podle jak",
        "ro": "și în de la a cu o că pe un este din care nu pentru mai au fost se ce sau lui"
        " fi sunt acest",
        "hu": "a az és hogy is nem egy van meg de csak már el ki mint volt ez azt ha még pedig"
        " vagy lesz",
        "tr": "ve bir bu da de için ile çok olarak daha gibi ne olan en ama sonra kadar var"
        " değil ya her şey",
        "id": "yang dan di ini itu dengan untuk dari dalam tidak akan ke pada juga ada adalah"
        " oleh karena atau mereka sudah bisa saat",
        "ru": "и в не на что с по как это он к из но за от о его то все она так же был для"
        " они было только",
        "uk": "і в на що не з до як це та у за від він по але його які був її про для також",
        "ca": "el la i de que els les en un una per amb no és del es al com més però dels va"
        " seu ha",
        "vi": "và của là có các trong được cho những một không người với này đã để khi đến"
        " từ cũng như",
        "sw": "na ya wa kwa za la katika ni kuwa hiyo huo hii cha yake pia lakini",
        "tl": "ang ng sa na mga at ay si para kay hindi ito ni din rin",
    }.items()
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
_OTHER_SCRIPTS = re.compile(
    r"[\u0370-\u03ff\u0590-\u05ff\u0900-\u097f\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff"
    r"\u4e00-\u9fff\uac00-\ud7af]"
)


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


SAMPLE_CHARS = 20000  # a dump opens with menus: look well into it
CHECK_CHARS = 5000


def _counts(text: str) -> tuple[Counter[str], int]:
    # An ASCII text lowered whole has the same words, each lowered (no call a word).
    words = _WORD.findall(text.lower()) if text.isascii() else map(str.lower, _WORD.findall(text))
    counts = Counter(filterfalse(str.isdigit, words))
    return counts, sum(counts.values())


def _ratio(counts: Counter[str], total: int, code: str) -> float:
    function_words = FUNCTION_WORDS.get(code, frozenset())
    if not total:
        return 0.0
    return sum(counts[w] for w in counts.keys() & function_words) / total  # whole counts: any order


def detect_language(text: str, sample_chars: int = SAMPLE_CHARS) -> str | None:
    """ISO 639-1 code of `text` from its script and function words; None when unsure."""
    sample = text[:sample_chars]
    if not sample.isascii() and len(_OTHER_SCRIPTS.findall(sample)) > 0.02 * len(sample):
        letters = sum(map(str.isalpha, sample)) or 1
        if len(_SCRIPTS[0][1].findall(sample)) / letters > 0.05:
            return "ja"
        for code, pattern in _SCRIPTS[1:]:
            if len(pattern.findall(sample)) / letters > 0.3:
                return code
    counts, total = _counts(sample)
    if total < 5:
        return None
    best, best_ratio = None, 0.0
    for code in FUNCTION_WORDS:
        ratio = _ratio(counts, total, code)
        if ratio > best_ratio:
            best, best_ratio = code, ratio
    return best if best_ratio >= 0.05 else None


def checked_language(declared: str | None, text: str) -> str | None:
    """The page's declared language unless its text plainly is another one (a template left
    on 'en' around a German story); the detected language when nothing is declared."""
    sample = text[:CHECK_CHARS]  # story prose: its start is enough
    detected = detect_language(sample)
    if not declared or declared == detected or detected is None:
        return declared or detected
    counts, total = _counts(sample)
    if total < 50 or declared not in FUNCTION_WORDS:
        return declared
    if _ratio(counts, total, declared) < 0.03 and _ratio(counts, total, detected) >= 0.12:
        return detected
    return declared
