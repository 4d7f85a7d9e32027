"""Unicode and whitespace repair: NFC, safe mojibake repair, no control characters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Characters that cp1252 maps to the bytes 0x80-0xBF (UTF-8 continuation bytes), plus the
# C1 controls a latin-1 decode leaves for the bytes cp1252 does not define.
_CONT = (
    "\x80-\xbf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018\u2019\u201a\u201c\u201d\u201e\u2020\u2021\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_MOJIBAKE = re.compile(
    f"(?:[\xc2-\xdf][{_CONT}]|[\xe0-\xef][{_CONT}]{{2}}|[\xf0-\xf4][{_CONT}]{{3}})+"
)
# The first characters of the UTF-8 sequences mojibake repair handles most ("Ã©", "â€™").
_MOJIBAKE_LEADS = re.compile("[\xc2\xc3\xc5\xe2\xc4\xd0\xd1\xce\xcf\xe3\xe5\xe6\xe7\xe8\xe9]")
_DROP = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff\ufffe\uffff\ufffd]+")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")


def _to_bytes(run: str) -> bytes | None:
    out = bytearray()
    for ch in run:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) < 256:
                out.append(ord(ch))
            else:
                return None
    return bytes(out)


def _repair_run(match: re.Match[str]) -> str:
    run = match.group(0)
    raw = _to_bytes(run)
    if raw is None:
        return run
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return run


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 read as cp1252/latin-1 ("â€™" -> "’") where the bytes decode cleanly."""
    if not _MOJIBAKE_LEADS.search(text):  # one scan of the text, not one per character
        return text
    return _MOJIBAKE.sub(_repair_run, text)


def normalize_line(line: str) -> str:
    """One line: mojibake repaired, NFC, no control characters, single spaces, stripped."""
    if line.isascii():
        # Most lines are already clean (block texts are whitespace-joined): printable ASCII
        # holds no character to drop and no space but " ", so only runs and ends could change.
        if line.isprintable() and "  " not in line and line[:1] != " " and line[-1:] != " ":
            return line
        return _SPACES.sub(" ", _DROP.sub("", line)).strip()
    line = unicodedata.normalize("NFC", repair_mojibake(line))
    # As above: a printable line holds no character to drop but U+FFFD, and no space but " ".
    if line.isprintable() and "\ufffd" not in line and "  " not in line and line[:1] != " " and line[-1:] != " ":
        return line
    return _SPACES.sub(" ", _DROP.sub("", line)).strip()


def split_lines(text: str) -> list[str]:
    """Lines of `text` with every kind of line break (CR, LS, PS, VT, FF, NEL) honoured."""
    return _NEWLINES.sub("\n", text).split("\n")


def join_paragraphs(paragraphs: Iterable[str]) -> str:
    """Normalised non-empty paragraphs joined by exactly one blank line."""
    cleaned = (normalize_line(p) for p in paragraphs)
    return "\n\n".join(p for p in cleaned if p)


_WIDE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")


def text_size(text: str) -> float:
    """Length in latin-equivalent characters (a CJK or Hangul character counts 2.5)."""
    if text.isascii():  # most lines: no wide character to look for
        return float(len(text))
    return len(text) + 1.5 * len(_WIDE.findall(text))


def is_story_like(text: str) -> bool:
    """A paragraph that reads like story prose: long enough and ending like a sentence."""
    return text_size(text) >= 100 and bool(_SENTENCE_END.search(text))
