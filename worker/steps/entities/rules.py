"""Document-level rules of the entities step: model spans in, canonical entities out.

Pure functions over a text and the spans the NER model found in it:

    clean spans (strip "the", titles, possessives; drop junk)
      -> datelines, head words, census given names, gazetteer (retype, add places and groups)
      -> propagate every name to its untagged occurrences
      -> group mentions: same name, surname after a full name, acronym of a long name,
         aliases of one country or organisation ("US", "America" -> "United States")
      -> one label per group (vote), canonical = the alias table's name else the longest
         form, salience

Each rule family can be left out (`RULE_FAMILIES`, `skip`) so that the evaluation measures
what it adds on documents it was not written from.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

from spacy.lang.en.stop_words import STOP_WORDS

from worker.document import ENTITY_LABELS, Entity
from worker.steps.entities.gazetteer import Gazetteer

KEPT_LABELS = frozenset(ENTITY_LABELS)
HONORIFICS = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Sir", "Dame", "Prof", "Professor")
TITLES = HONORIFICS + (
    "President", "Vice President", "Prime Minister", "Deputy Prime Minister", "Chancellor",
    "Minister", "Foreign Minister", "Defence Minister", "Defense Minister", "Secretary",
    "Senator", "Sen", "Rep", "Representative", "Governor", "Gov", "Mayor", "General", "Gen",
    "Lt", "Col", "Colonel", "Major", "Maj", "Captain", "Capt", "Sgt", "Sergeant", "Admiral",
    "Judge", "Justice", "Ambassador",
    "Chairman", "Chairwoman", "Speaker", "Lord", "Lady", "Rev", "Reverend", "Father",
    "Saint", "St", "Supreme Leader", "Premier", "Commissioner", "Inspector", "Detective",
    "Officer", "Coach", "Dear",
)
_TITLE_ALT = "|".join(sorted((re.escape(t) for t in TITLES), key=len, reverse=True))
TITLE_RE = re.compile(rf"^(?:(?:{_TITLE_ALT})\.?\s+)+(?=[A-Z])")
LEADING_JUNK_RE = re.compile(r"^(?:[\s\"“”‘’'(\[{«‹*•·–—-]|the\s+|The\s+|THE\s+)+")
TRAILING_JUNK_RE = re.compile(r"(?:['’]s|['’]|[\s\"“”‘’)\]}»›,;:!?*•·–—-]|\.(?<![A-Z]\.))+$")
SOCIAL_NAMES = frozenset({
    "facebook", "twitter", "x", "whatsapp", "instagram", "linkedin", "pinterest", "reddit",
    "telegram", "tiktok", "youtube", "snapchat", "flipboard", "messenger", "email", "e-mail",
    "threads", "bluesky", "mastodon", "tumblr", "google news", "apple news",
})
PROMPT_RE = re.compile(
    r"\b(share|follow|subscribe|download|sign up|click|tap|join us|read more|listen on|get|"
    r"watch on|copy link|newsletter|on the app)\b",
    re.I,
)
PAREN_ACRONYM_RE = re.compile(r"^\s*\(\s*(?:the\s+)?([A-Z][A-Z0-9&.]{1,9}s?)\s*\)")
DESCRIPTOR_ACRONYM_RE = re.compile(
    r"(?:\b([A-Z][\w-]+)['’]s\s+|\bthe\s+)((?:[a-z][\w-]*\s+){0,4}?[a-z][\w-]*)\s+"
    r"([A-Z][A-Z0-9]{1,7})\b"
)
MINOR_WORDS = frozenset({"of", "and", "for", "the", "de", "du", "des", "la", "le", "on", "in",
                         "&", "to", "at", "al", "von", "van", "der"})
GPE_FROM = frozenset({"PERSON", "ORG", "PRODUCT", "WORK_OF_ART", "FAC", "LOC", "NORP", "EVENT",
                      "LAW", "GPE"})
NORP_FROM = frozenset({"PERSON", "ORG", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "NORP"})
MAX_SPAN_CHARS = 120
TIME_ZONES = frozenset({"GMT", "UTC", "BST", "CET", "CEST", "EET", "EEST", "EST", "EDT", "CST",
                        "CDT", "MST", "MDT", "PST", "PDT", "IST", "JST", "AEST", "AEDT", "MSK"})
NUMERIC_LABELS = frozenset({"DATE", "TIME", "MONEY", "PERCENT", "QUANTITY", "CARDINAL",
                            "ORDINAL"})
EVENT_HEADS = frozenset({"Cup", "Games", "Olympics", "Championship", "Championships", "Awards",
                         "Finals", "Final", "Festival", "Summit", "War", "Show", "Expo",
                         "Conference", "Grand Prix", "Marathon", "Open", "Tournament",
                         "Series", "Bowl", "Oscars", "Revolution", "Uprising", "Olympiad"})
ORG_HEADS = frozenset({"Co", "Co.", "Inc", "Inc.", "Corp", "Corp.", "Ltd", "Ltd.", "LLC", "plc",
                       "Group", "Association", "University", "Institute", "Agency", "Council",
                       "Committee", "Ministry", "Department", "Police", "Bank", "Airlines",
                       "Airways", "Party", "Army", "Navy", "Commission", "Court", "Senate",
                       "Times", "Post", "Journal", "Foundation", "Federation", "Union",
                       "Company", "Corporation", "Bureau", "Office", "Service", "Authority",
                       "Board", "Club", "College", "School", "Hospital", "Guard", "Assembly",
                       "Parliament", "Congress", "Organization", "Organisation", "Network",
                       "Studios", "Media", "Press", "Reuters", "Motors", "Industries"})
DATELINE_RE = re.compile(
    r"^\s*([A-Z][A-Z.'’ -]{2,40}?)(?:,\s*([A-Z][A-Za-z.]+(?:\s[A-Z][A-Za-z.]+)?))?"
    r"\s*(?:\(([A-Za-z][\w ]{0,30})\))?\s*(?:—|–|:|-{1,2})\s"
)


@dataclass(slots=True)
class Span:
    """One mention being resolved: char offsets, label, and how sure the rules are (weight)."""

    start: int
    end: int
    label: str
    weight: float = 1.0


def entity_id(label: str, canonical: str) -> str:
    """Stable id of an entity: the same canonical name and label give the same id everywhere."""
    return hashlib.sha1(f"{label}:{canonical.casefold()}".encode()).hexdigest()[:16]


def clean_span(text: str, start: int, end: int, label: str) -> Span | None:
    """The span without leading "the", titles, quotes and possessives; None if it is junk."""
    surface = text[start:end]
    lead = LEADING_JUNK_RE.match(surface)
    if lead:
        start += lead.end()
        surface = text[start:end]
    title = TITLE_RE.match(surface)
    if title and label in ("PERSON", "ORG", "NORP", "GPE", "WORK_OF_ART", "PRODUCT"):
        honorific = surface.split()[0].rstrip(".") in HONORIFICS
        if label == "PERSON" or honorific:
            start += title.end()
            label = "PERSON"
    surface = text[start:end]
    paren = surface.find("(")
    if paren > 0 and ")" not in surface[paren:] or paren > 0 and surface.endswith(")"):
        end = start + paren  # "Long Name (ACR" or "Long Name (ACR)": the acronym is linked later
    surface = text[start:end]
    trail = TRAILING_JUNK_RE.search(surface)
    if trail:
        end = start + trail.start()
    surface = text[start:end]
    if not is_plausible_name(surface):
        return None
    return Span(start, end, label)


def split_span(text: str, span: Span) -> list[Span]:
    """Pieces of a span glued by the model: "Punjab’s Bhatinda", "Browns DL Sheldon Richardson"."""
    surface = text[span.start:span.end]
    pieces = [span]
    match = re.search(r"['’]s\s+(?=[A-Z])", surface)
    if match and span.label in ("PERSON", "GPE", "LOC", "NORP", "PRODUCT"):
        head = Span(span.start, span.start + match.start(), span.label, span.weight)
        tail = Span(span.start + match.end(), span.end, span.label, span.weight)
        pieces = [head, tail]
    if span.label == "PERSON":
        out = []
        for piece in pieces:
            words = list(re.finditer(r"\S+", text[piece.start:piece.end]))
            cut = [w for w in words[:-1] if re.fullmatch(r"[A-Z]{2,4}", w.group())]
            if cut:
                piece = Span(piece.start + cut[-1].end() + 1, piece.end, "PERSON", piece.weight)
            out.append(piece)
        pieces = out
    return [p for p in pieces if p.end > p.start and is_plausible_name(text[p.start:p.end])]


PARTICLE_RE = re.compile(
    r"^(?:al|el|bin|ibn|da|di|del|della|van|von|der|den|du|le|la|am|im|y|e|of|and|on|upon|"
    r"for|the|de|neo|pro|anti)(?:[-’'].*)?$")


def _is_lowercase_word(word: str) -> bool:
    """A lowercase word that is not a name particle ("al-", "van", "of")."""
    return word[:1].islower() and word.casefold() not in MINOR_WORDS and not PARTICLE_RE.match(
        word)


def trim_lowercase(text: str, span: Span) -> Span:
    """The span without trailing lowercase words the model swept in ("Andrew later")."""
    words = list(re.finditer(r"\S+", text[span.start:span.end]))
    while len(words) > 1 and _is_lowercase_word(words[-1].group()):
        words.pop()
    return Span(span.start, span.start + words[-1].end(), span.label, span.weight) if words \
        else span


def has_lowercase_content(surface: str) -> bool:
    """Whether a name contains a lowercase word that is not a particle ("Garrett hit Rudolph")."""
    return any(_is_lowercase_word(word) for word in surface.split())


def is_plausible_name(surface: str) -> bool:
    """Whether a surface form can be a named entity (not a single char, punctuation, a number)."""
    if len(surface) < 2 or len(surface) > MAX_SPAN_CHARS or "\n" in surface:
        return False
    if surface in TIME_ZONES or surface.split()[-1].endswith("ism"):
        return False
    if not any(ch.isalpha() for ch in surface):
        return False
    return any(ch.isupper() for ch in surface)


def _overlaps(spans: list[Span], start: int, end: int) -> Span | None:
    """The first span overlapping [start, end), if any."""
    for span in spans:
        if span.start < end and start < span.end:
            return span
    return None


def _paragraph_bounds(text: str, offset: int) -> tuple[int, int]:
    """Start and end offsets of the line holding `offset`."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, (len(text) if end < 0 else end)


def is_share_prompt(text: str, span: Span) -> bool:
    """Whether the span sits in a short share/follow prompt ("Get Sky News on WhatsApp")."""
    line_start, line_end = _paragraph_bounds(text, span.start)
    line = text[line_start:line_end].strip()
    words = line.split()
    if len(words) > 16:
        return False
    folded = line.casefold()
    ends_on_platform = re.search(r"\b(?:on|via|to)\s+([\w.-]+(?:\s[\w.-]+)?)\W*$", folded)
    if (ends_on_platform and ends_on_platform.group(1) in SOCIAL_NAMES and len(words) <= 8
            and not line.endswith((".", "!", "?", "\"", "”"))):
        return True
    if not PROMPT_RE.search(line):
        return False
    return any(re.search(rf"\b{re.escape(name)}\b", folded) for name in SOCIAL_NAMES)


def apply_heads(text: str, spans: list[Span]) -> None:
    """Type names by their head word: "... Cup" is an EVENT, "... Institute" an ORG."""
    for span in spans:
        words = text[span.start:span.end].split()
        if len(words) < 2:
            continue
        head = words[-1]
        if head in EVENT_HEADS and span.label in ("ORG", "PERSON", "GPE", "PRODUCT", "FAC",
                                                   "WORK_OF_ART", "NORP"):
            span.label, span.weight = "EVENT", 1.5
        elif head in ORG_HEADS and span.label in ("PERSON", "GPE", "PRODUCT", "FAC", "NORP",
                                                   "WORK_OF_ART", "LOC"):
            span.label, span.weight = "ORG", 1.5


def apply_dateline(text: str, spans: list[Span], gazetteer: Gazetteer) -> None:
    """The all-caps dateline city ("MADRID —", "HAYWARD, Calif. (AP) —") and its agency."""
    match = DATELINE_RE.match(text)
    if not match:
        return
    city = match.group(1).strip()
    if not re.fullmatch(r"[A-Z][A-Z.'’ -]+", city) or len(city.replace(" ", "")) < 3:
        return
    for group, label in ((1, "GPE"), (2, "GPE"), (3, "ORG")):
        if match.group(group) is None:
            continue
        start, end = match.span(group)
        while end > start and text[end - 1] == " ":
            end -= 1
        if group == 3 and not match.group(3)[:1].isupper():
            continue
        hit = _overlaps(spans, start, end)
        if hit is None:
            spans.append(Span(start, end, label, 3.0))
        elif hit.start == start and hit.end == end:
            hit.label, hit.weight = label, 3.0


def apply_given_names(text: str, spans: list[Span], gazetteer: Gazetteer) -> None:
    """"Given-name Surname" spans the model typed otherwise are PERSON ("Marcel Granollers")."""
    for span in spans:
        if span.label == "PERSON" or span.weight > 1.0:
            continue
        surface = text[span.start:span.end]
        words = surface.split()
        if not 2 <= len(words) <= 3 or gazetteer.lookup(surface):
            continue
        if words[-1] in ORG_HEADS or words[-1] in EVENT_HEADS:
            continue
        if words[0] in gazetteer.given_names and all(
                re.fullmatch(r"[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*|[A-Z]\.", w) for w in words):
            span.label, span.weight = "PERSON", 1.5


GIVEN_SURNAME_RE = re.compile(r"\b([A-Z][a-z]+) ((?:[A-Z]\. )?[A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")


def add_given_surname(text: str, spans: list[Span], gazetteer: Gazetteer) -> None:
    """Untagged "Given-name Surname" pairs (a census given name, then a capitalised word that
    is not a place) are PERSON mentions."""
    for match in GIVEN_SURNAME_RE.finditer(text):
        given, surname = match.group(1), match.group(2)
        if given not in gazetteer.given_names or gazetteer.lookup(surname):
            continue
        if surname in ORG_HEADS or surname in EVENT_HEADS or surname.casefold() in STOP_WORDS:
            continue
        if _overlaps(spans, match.start(), match.end()) is None:
            spans.append(Span(match.start(), match.end(), "PERSON", 1.0))


def apply_gazetteer(text: str, spans: list[Span], gazetteer: Gazetteer) -> None:
    """Retype spans that are known places or groups, and add tier-A names the model missed."""
    for span in spans:
        found = gazetteer.lookup(text[span.start:span.end])
        if not found or found[0] == span.label:
            continue
        label, tier = found
        if label in ("GPE", "LOC") and span.label in GPE_FROM:
            if span.label == "PERSON" and tier != "A":
                continue
            if span.label == "GPE" and label == "LOC":
                continue
            span.label, span.weight = label, 2.0
        elif label == "NORP" and span.label in NORP_FROM:
            span.label, span.weight = label, 2.0
        elif label == "ORG" and span.label in KEPT_LABELS:
            span.label, span.weight = label, 2.0
    for hit in gazetteer.find(text):
        if _overlaps(spans, hit.start, hit.end) is None:
            spans.append(Span(hit.start, hit.end, hit.label, 1.5))


def _occurrences(text: str, surface: str) -> list[tuple[int, int]]:
    """Whole-word occurrences of a surface form in the text: not glued to a word character
    (`str.isalnum` or "_", as regex `\\w`) or a hyphen on either side.

    `str.find` rather than a regex per name: compiling one pattern per name was most of the
    rules' time."""
    found: list[tuple[int, int]] = []
    if not surface:
        return found
    size, length = len(surface), len(text)
    start = text.find(surface)
    while start >= 0:
        end = start + size
        if not (start and _glues(text[start - 1])) and not (end < length and _glues(text[end])):
            found.append((start, end))
            start = text.find(surface, end)
        else:
            start = text.find(surface, start + 1)
    return found


def _glues(char: str) -> bool:
    """Whether a character next to a name makes it part of a longer word."""
    return char.isalnum() or char in "_-"


def propagate(text: str, spans: list[Span], names: dict[str, str]) -> None:
    """Tag untagged occurrences of names already tagged in the document (name -> label)."""
    for surface, label in names.items():
        for start, end in _occurrences(text, surface):
            if _overlaps(spans, start, end) is None:
                spans.append(Span(start, end, label, 0.5))


class _Groups:
    """Union-find over surface keys (casefolded names)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, key: str, into: str) -> None:
        root, target = self.find(key), self.find(into)
        if root != target:
            self.parent[root] = target


def _key(text: str, span: Span) -> str:
    key = " ".join(text[span.start:span.end].split()).casefold()
    return "language:" + key if span.label == "LANGUAGE" else key


def _initials(name: str) -> set[str]:
    """Acronyms a long name may go by: initials of its capitalised words, with/without minors."""
    words = re.findall(r"[\w&]+", name)
    content = [w for w in words if w.casefold() not in MINOR_WORDS]
    forms = set()
    if len(content) >= 2:
        forms.add("".join(w[0] for w in content).upper())
    if len(words) >= 2:
        forms.add("".join(w[0] for w in words if w != "&").upper())
    return forms


def link_people(text: str, spans: list[Span], groups: _Groups, gazetteer: Gazetteer) -> None:
    """A surname (or first name) alone after a full PERSON name is the same person."""
    full_names: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span.label != "PERSON":
            continue
        parts = text[span.start:span.end].split()
        if len(parts) >= 2 and parts[-1][:1].isupper():
            full_names[parts[-1]].append(span)
    for surname, owners in full_names.items():
        if len(surname) < 2 or gazetteer.lookup(surname):
            continue
        owner_keys = {_key(text, owner) for owner in owners}
        for start, end in _occurrences(text, surname):
            hit = _overlaps(spans, start, end)
            if hit is None:
                hit = Span(start, end, "PERSON", 1.0)
                spans.append(hit)
            elif not (hit.start == start and hit.end == end):
                continue
            hit.label = "PERSON"
            if len(owner_keys) == 1:
                groups.union(_key(text, hit), next(iter(owner_keys)))
            else:
                before = [o for o in owners if o.start < start] or owners
                groups.union(_key(text, hit), _key(text, before[-1]))


def link_acronyms(text: str, spans: list[Span], groups: _Groups) -> None:
    """An acronym is the long ORG/GPE/... name it abbreviates when the document ties them."""
    long_names = [s for s in spans if s.label in ("ORG", "GPE", "FAC", "LAW", "EVENT", "NORP")
                  and len(text[s.start:s.end].split()) >= 2]
    aliases: dict[str, str] = {}  # acronym -> key of long name
    for span in long_names:
        match = PAREN_ACRONYM_RE.match(text[span.end:span.end + 16])
        if match:
            aliases.setdefault(match.group(1).replace(".", ""), _key(text, span))
    by_initials: dict[str, set[str]] = defaultdict(set)
    for span in long_names:
        if span.label in ("ORG", "EVENT"):
            for form in _initials(text[span.start:span.end]):
                by_initials[form].add(_key(text, span))
                if span.label == "EVENT":
                    by_initials[form + "s"].add(_key(text, span))
    for form, keys in by_initials.items():
        if len(keys) == 1:
            aliases.setdefault(form, next(iter(keys)))
    for match in DESCRIPTOR_ACRONYM_RE.finditer(text):
        owner, words, acronym = match.group(1), match.group(2).split(), match.group(3)
        if acronym in aliases:
            continue
        wanted = {w.casefold() for w in words if w.casefold() not in MINOR_WORDS}
        if owner:
            wanted.add(owner.casefold())
        if len(wanted) < 2:
            continue
        for span in long_names:
            name_words = {w.casefold() for w in re.findall(r"[\w-]+", text[span.start:span.end])}
            if span.label == "ORG" and wanted <= name_words:
                aliases[acronym] = _key(text, span)
                break
    for acronym, key in aliases.items():
        label = next((s.label for s in long_names if _key(text, s) == key), "ORG")
        for start, end in _occurrences(text, acronym):
            hit = _overlaps(spans, start, end)
            if hit is None:
                hit = Span(start, end, label, 1.0)
                spans.append(hit)
            elif not (hit.start == start and hit.end == end):
                continue
            hit.label = label
            groups.union(_key(text, hit), key)


def link_aliases(text: str, spans: list[Span], groups: _Groups,
                 gazetteer: Gazetteer) -> dict[str, str]:
    """Other names of one country or organisation ("US", "U.S.", "America" -> "United
    States") are one entity; returns group root -> canonical name for the groups they joined.
    Only spans already tagged with the alias's label take part, and a name that is only part of
    the canonical one ("Emirates" of "United Arab Emirates", "Congo", "Saudi") joins it only
    when the document names the country another way too: alone, it may be something else (an
    airline, the other Congo), and it keeps its own name."""
    found: list[tuple[Span, str, str]] = []
    supported: set[str] = set()  # canonical names the document names in full or by a whole alias
    for span in spans:
        surface = " ".join(text[span.start:span.end].split())
        known = gazetteer.aliases.get(surface)
        if known is None or known[1] != span.label:
            continue
        found.append((span, surface, known[0]))
        if not _part_of(surface, known[0]):
            supported.add(known[0])
    canonical_keys: dict[str, str] = {}
    for span, surface, canonical in found:
        if _part_of(surface, canonical) and canonical not in supported and canonical not in text:
            continue
        key = canonical.casefold()
        groups.union(_key(text, span), key)
        canonical_keys[key] = canonical
    return {groups.find(key): name for key, name in canonical_keys.items()}


def _part_of(alias: str, canonical: str) -> bool:
    """Whether an alias is some of the canonical name's words, not the whole name."""
    return alias != canonical and f" {alias} " in f" {canonical} "


def salience(first: int, count: int, max_count: int, length: int, lead_end: int) -> float:
    """0..1 score: frequent entities and those named early (headline, lead) score high."""
    position = 1.0 - first / max(length, 1)
    frequency = count / max(max_count, 1)
    in_lead = 1.0 if first < lead_end else 0.0
    return round(min(1.0, 0.45 * frequency + 0.35 * position + 0.2 * in_lead), 4)


def _line_pieces(text: str, raw: list[tuple[int, int, str]]) -> list[tuple[int, int, str, float]]:
    """Kept model spans cut at line breaks (a span across paragraphs is two weak guesses)."""
    pieces = []
    for start, end, label in raw:
        if label not in KEPT_LABELS:
            continue
        if "\n" not in text[start:end]:
            pieces.append((start, end, label, 1.0))
            continue
        for match in re.finditer(r"[^\n]+", text[start:end]):
            pieces.append((start + match.start(), start + match.end(), label, 0.5))
    return pieces


RULE_FAMILIES: tuple[str, ...] = (
    "split", "trim", "share_prompts", "dateline", "heads", "given_names", "gazetteer",
    "propagate", "link_people", "link_acronyms", "aliases",
)


def resolve(
    text: str, raw: list[tuple[int, int, str]], gazetteer: Gazetteer,
    skip: frozenset[str] = frozenset(),
) -> list[Entity]:
    """Canonical entities of a text from the model's (start, end, label) spans (rule families
    named in `skip` are left out)."""
    spans: list[Span] = []
    blockers = [Span(start, end, label) for start, end, label in raw if label in NUMERIC_LABELS]
    for start, end, label, weight in _line_pieces(text, raw):
        span = clean_span(text, start, end, label)
        if span is None:
            continue
        span.weight = weight
        for piece in ([span] if "split" in skip else split_span(text, span)):
            if "trim" not in skip:
                piece = trim_lowercase(text, piece)
                surface = text[piece.start:piece.end]
                if has_lowercase_content(surface) and piece.label not in (
                        "WORK_OF_ART", "LAW", "EVENT"):
                    continue
            if _overlaps(spans, piece.start, piece.end) is None:
                spans.append(piece)
    if "share_prompts" not in skip:
        spans = [s for s in spans if not is_share_prompt(text, s)]
    if "dateline" not in skip:
        apply_dateline(text, spans, gazetteer)
    if "heads" not in skip:
        apply_heads(text, spans)
    if "given_names" not in skip:
        apply_given_names(text, spans, gazetteer)
        add_given_surname(text, spans, gazetteer)
    occupied = spans + blockers
    if "gazetteer" not in skip:
        apply_gazetteer(text, occupied, gazetteer)
    spans = [s for s in occupied if s.label in KEPT_LABELS]

    occupied = spans + blockers
    if "propagate" not in skip:
        votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for span in spans:
            votes[text[span.start:span.end]][span.label] += span.weight
        names = {name: max(counter, key=counter.__getitem__) for name, counter in votes.items()}
        propagate(text, occupied, names)
    spans = [s for s in occupied if s.label in KEPT_LABELS and (
        "share_prompts" in skip or not is_share_prompt(text, s))]

    groups = _Groups()
    for span in spans:
        groups.find(_key(text, span))
    if "link_people" not in skip:
        link_people(text, spans, groups, gazetteer)
    if "link_acronyms" not in skip:
        link_acronyms(text, spans, groups)
    named = {} if "aliases" in skip else link_aliases(text, spans, groups, gazetteer)
    return build_entities(text, spans, groups, named)


# Labels of other languages' models (WikiNER: PER, ORG, LOC, MISC) in our scheme; MISC has no
# single counterpart and is dropped. LOC is mostly a country or city in news: GPE, unless the
# gazetteer knows the name as a continent or region.
OTHER_LANGUAGE_LABELS = {"PER": "PERSON", "PERSON": "PERSON", "ORG": "ORG", "LOC": "GPE",
                         "GPE": "GPE"}
# Lowercase articles a model may sweep into a name ("la France", "l’ONU", "die Bundesbank").
ARTICLE_RE = re.compile(r"^(?:(?:le|la|les|el|los|las|il|lo|gli|der|die|das|den|dem|des|de|"
                        r"o|os|a|as)\s+|[ld]['’])")


def resolve_other_language(
    text: str, raw: list[tuple[int, int, str]], gazetteer: Gazetteer
) -> list[Entity]:
    """Canonical entities of a text in another language than English from its model's spans:
    labels mapped, quotes and articles stripped, one entity per name, a surname alone linked to
    the full name. The English rules and gazetteers are not applied."""
    mapped = [(start, end, OTHER_LANGUAGE_LABELS[label]) for start, end, label in raw
              if label in OTHER_LANGUAGE_LABELS]
    spans: list[Span] = []
    for start, end, label, weight in _line_pieces(text, mapped):
        article = ARTICLE_RE.match(text[start:end])
        if article:
            start += article.end()
        span = clean_span(text, start, end, label)
        if span is None or _overlaps(spans, span.start, span.end) is not None:
            continue
        span.weight = weight
        found = gazetteer.lookup(text[span.start:span.end])
        if span.label == "GPE" and found and found[0] == "LOC":
            span.label = "LOC"
        spans.append(span)
    groups = _Groups()
    for span in spans:
        groups.find(_key(text, span))
    link_people(text, spans, groups, gazetteer)
    return build_entities(text, spans, groups)


def build_entities(text: str, spans: list[Span], groups: _Groups,
                   named: dict[str, str] | None = None) -> list[Entity]:
    """One Entity per group: voted label, canonical = the alias table's name for the group
    (`named`: group root -> name) else the longest form; every mention, salience."""
    members: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        members[groups.find(_key(text, span))].append(span)
    first_break = text.find("\n\n")
    lead_end = first_break if 0 < first_break < 600 else min(len(text), 400)
    max_count = max((len(group) for group in members.values()), default=1)
    entities: list[Entity] = []
    for root, group in members.items():
        group.sort(key=lambda s: s.start)
        vote: dict[str, float] = defaultdict(float)
        for span in group:
            vote[span.label] += span.weight
        label = max(vote, key=vote.__getitem__)
        forms = [" ".join(text[s.start:s.end].split()) for s in group]
        canonical = (named or {}).get(root) or max(
            forms, key=lambda f: (len(f.split()), len(f), -forms.index(f)))
        mentions = [(s.start, s.end) for s in group]
        entities.append(Entity(
            id=entity_id(label, canonical),
            text=canonical,
            label=label,
            canonical=canonical,
            mentions=mentions,
            count=len(mentions),
            salience=salience(group[0].start, len(group), max_count, len(text), lead_end),
        ))
    merged: dict[str, Entity] = {}
    for entity in entities:  # two groups with one canonical name and label are one entity
        kept = merged.setdefault(entity.id, entity)
        if kept is not entity:
            kept.mentions = sorted(set(kept.mentions) | set(entity.mentions))
            kept.count = len(kept.mentions)
            kept.salience = max(kept.salience, entity.salience)
    result = sorted(merged.values(), key=lambda e: (-e.salience, e.mentions[0][0]))
    return result
