"""Generic boilerplate tests for lines and paragraphs (share prompts, newsletters, cookies...).

The patterns are generic site furniture in several languages, not strings of particular sites.
"""

from __future__ import annotations

import re
from typing import Any

from worker.steps.common import short_text_cache

_I = re.IGNORECASE | re.UNICODE
_UPPER_LITERAL = re.compile(r"(?<!\\)[A-Z]")


class CaselessPattern:
    """A case-insensitive pattern that answers faster on ASCII text: re's case-insensitive
    matching costs about twice the plain one, and most lines are ASCII. An ASCII text is
    lowered and matched case-sensitively; other text is matched case-insensitively.

    Both answer alike because the pattern names letters in lower case only, and none of its
    non-ASCII characters is a case partner of an ASCII one (re pairs "ſ" with "s", the Kelvin
    sign with "k"...): the constructor refuses a pattern where either fails. Matches are
    answered as booleans, the case-folded text's match object being no use to a caller."""

    def __init__(self, pattern: str) -> None:
        if _UPPER_LITERAL.search(pattern):
            raise ValueError(f"upper-case letter in a caseless pattern: {pattern!r}")
        for char in {c for c in pattern if not c.isascii()}:
            if any(re.fullmatch(re.escape(char), chr(code), _I) for code in range(128)):
                raise ValueError(f"{char!r} has an ASCII case partner: {pattern!r}")
        self.pattern = pattern
        self.caseless = re.compile(pattern, _I)
        self._lowered = re.compile(pattern, re.UNICODE)

    def match(self, text: str) -> bool:
        """Whether the pattern matches at the start of `text`, case ignored."""
        if text.isascii():
            return self._lowered.match(text.lower()) is not None
        return self.caseless.match(text) is not None

    def count(self, text: str) -> int:
        """How many times the pattern matches in `text` (as `findall` counts), case ignored."""
        if text.isascii():
            return len(self._lowered.findall(text.lower()))
        return len(self.caseless.findall(text))

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text`, case ignored."""
        if text.isascii():
            return self._lowered.search(text.lower()) is not None
        return self.caseless.search(text) is not None


# A whole line that is site furniture (checked on lines of at most 40 words): patterns anchored
# at the line's start.
_JUNK_START = [
    r"^(share|tweet|e-?mail|print|pin( it)?|whatsapp|facebook|twitter|linkedin|reddit|flipboard"
    r"|telegram|copy( the)? link|save|comments?|\d+ comments?|teilen|partager|compartir"
    r"|compartilhe|condividi|bagikan|поделиться|공유)\b(\W+\w+){0,2}\W*$",
    r"^follow (us|our|.{0,40}\b(on|via) )",
    r"^(sign up|subscribe|register)\b.{0,60}\b(newsletter|inbox|e-?mail|updates|alerts)\b",
    r"^(the |our |daily |weekly |free )?newsletters?\b[^.!?]{0,40}$",
    r"^.{0,40}\b(abonnieren|abonnez|inscrivez|suscr[ií]bete|assine|iscriviti|berlangganan"
    r"|подпишитесь)\b.{0,60}$",
    r"^(advertisement|advertising|sponsored|anzeige|publicit[ée]|publicidad[e]?|pubblicit[àa]"
    r"|iklan|реклама|광고)\W*$",
    r"^(story continues below|continue reading|read (the )?full (story|article)|read more"
    r"|load more|show more|see more|view (all|more)|more stories|weiterlesen|lire la suite"
    r"|leer m[aá]s|leia mais|continua a leggere|selengkapnya)\b.{0,40}$",
    r"^(image|photo|picture|video) (copyright|caption|credit)\b",
    r"^(photo|foto|credit|cr[ée]dit|source|quelle|fonte|fuente)\s*:",
    r"^(©|\(c\)|copyright\b|all rights reserved)",
    r"^.{0,80}[©ⓒ].{0,80}$",
    r"^\[(사진|photo|foto|image|video|imagen|immagine|gambar)\b.{0,60}\]$",
    r"^(tags?|topics?|categories|category|filed under|related topics|schlagworte|mots-cl[ée]s"
    r"|etiquetas|tópicos)\s*:",
    r"^(updated|published|posted|last updated|aktualisiert|mis à jour|actualizado|atualizado"
    r"|diperbarui)\b.{0,50}\d",
    r"^\d[\d,.]*\s*(views?|comments?|shares?|reads?|likes?)$",
    r"^(previous|next) (article|post|story)\b",
    r"^also on\s+[\w-]+\.[a-z]{2,}\b",  # "Also on example.com <headline>": a teaser
    r"^additional reporting by\b",
    r"^\(?(reporting|writing|editing|additional reporting) by\b.{0,200}\)?$",
    r"^(report|reporting) (an )?(error|typo)\b[^.!?]{0,30}$",
    r"^\[\w+[^\]]*\].*\[/\w+\]$",
    r"^(log ?in|sign ?in|sign ?up|subscribe( now)?|register|my account|menu|search|home"
    r"|skip to (main )?content)\W*$",
    r"^[^.!?]{0,60}\b(privacy policy|terms (of (use|service)|and conditions)|cookie policy)\b[^.!?]{0,60}$",
]
# Patterns found anywhere in the line, each with the lower-case substrings one of which it
# needs: a line holding none of them skips the regex (the slow part of the check). The
# triggers sit beside their pattern so the two change together; tests check each pattern's
# example line against both.
_JUNK_ANYWHERE: list[tuple[tuple[str, ...], str, str]] = [
    (("share",), r"\bshare (this|the) (article|story|post|page)\b", "Share this article"),
    (("share",), r"\bshare it with (a friend|your friends|friends)\b", "Like it? Share it with a friend!"),
    (("whatsapp", "telegram", " app"),
     r"\b(get|download|install) .{0,40}\b(on|via|in) (whatsapp|telegram|the app|our app)\b",
     "Get the latest news on WhatsApp"),
    (("here", "hier", "ici", "clic"),
     r"\btap here to\b|\bclick(ing)? here\b|\bklicken sie hier\b|\bcliquez ici\b|\bhaga clic aquí\b",
     "Click here to read the report"),
    (("never miss",), r"\bnever miss (an update|a story)\b", "Never miss a story"),
    (("join our",), r"\bjoin our .{0,30}(channel|group|community|newsletter)\b", "Join our Telegram channel"),
    (("sign up", "signup", "subscribe", "register"),
     r"\b(sign up|signup|subscribe|register) (for|to) (our|the|a) (free |daily |weekly )?"
     r"(newsletters?|e-?mails?|updates|alerts)\b", "Sign up for our daily newsletter"),
    (("newsletter",), r"\b(get|receive|our|free) (daily |weekly )?newsletters?\b", "Get our newsletter"),
    (("inbox",), r"\b(to|in) your inbox\b", "The best stories delivered to your inbox"),
    (("unsubscribe", "no spam", "subscribe to our"),
     r"\bunsubscribe\b|\bno spam\b|\bsubscribe to our\b", "You can unsubscribe at any time"),
    (("activate", "confirm"), r"\b(activate|confirm) your (subscription|account|e-?mail)\b",
     "Please confirm your email"),
    (("commission", "compensation", "share of sales"),
     r"\b(we|site|us) (may )?(earn|receive|get) (a )?(small )?(commission|compensation"
     r"|share of sales)\b", "We may earn a commission from links on this page"),
    (("comment",), r"\bcomment(s|ing)? (policy|guidelines)\b", "Read our comment policy"),
    (("cookie",), r"\b(we|site|website) uses? cookies\b|\bcookies?\b.{0,80}\b(consent|accept|policy"
     r"|settings|browsing experience)\b", "This website uses cookies to improve your experience"),
    (("by continuing", "by using"), r"\bby (continuing|using) (to use )?(this|our) (site|website)\b",
     "By continuing to use this site you agree"),
    (("getty", "shutterstock", "istock", "afp", "reuters", "ap photo"),
     r"^[^.!?]{0,120}\b(getty images|shutterstock|istock|afp photo|reuters/|ap photo)\b[^.!?]{0,40}$",
     "A protester in the square, AP Photo"),
    ((")",), r"\((image|photo|picture|pic|foto|credit|source)s?\s*:[^)]*\)\s*$",
     "The bridge at night (Photo: John Smith)"),
    (("©",), r"©\s*\w+(\s*/\s*\w+)?", "Picture © Jane Doe"),
    (("rights reserved",), r"\ball rights reserved\b", "2019 Example Media. All rights reserved."),
    (("follow",), r"\bfollow (him|her|them|us|me) on\b", "Follow her on Twitter"),
    (("contributed",), r"\bcontributed (reporting|to this (report|story|article))\b",
     "Jane Doe contributed reporting."),
    ((")",), r"\(\s*[\w .,'\-]+/[\w .,'/\-]+\)\s*$", "The mayor at the opening (John Smith/Reuters)"),
    (("/",), r"\s/\s*(ap|afp|reuters|getty|epa|upi)( file| photo| images)?\s*$", "Fans at the match / AP"),
    (("tell us", "what do you think", "let us know"),
     r"\btell us what you think\b|\bwhat do you think\?\s*$|\blet us know in the comments\b",
     "Let us know in the comments"),
    (("as little as",), r"\b(subscri\w*|access)\b.{0,60}\bfor as little as\b.{0,40}\b(year|month|week)\b",
     "Unlimited access for as little as $1 a week"),
    (("available",), r"\b(this|the) (article|story|content) is (only )?available (to|for) "
     r"(subscribers|members|premium)\b", "This article is only available to subscribers"),
    (("to continue", "to read"), r"\bto (continue|read) (reading|the full story)\b",
     "Subscribe to continue reading"),
    (("javascript",), r"\bjavascript\b.{0,40}\b(enable|disabled|required)\b", "JavaScript is disabled in your browser"),
]
JUNK_START = CaselessPattern("|".join(f"(?:{p[1:]})" for p in _JUNK_START))
# The patterns above that scan into the line before their words, each with the lower-case
# substrings one of which it needs: on an ASCII line (lowered) the others are matched at once
# and these only when the line holds a cue (re tries every length of the scan otherwise).
_JUNK_START_SCANS: dict[int, tuple[str, ...]] = {
    4: ("abonn", "inscrivez", "suscr", "assine", "iscriviti", "berlangganan", "подпишитесь"),
    10: ("©", "ⓒ"),
    22: ("policy", "terms "),
}
_JUNK_START_PLAIN = re.compile(
    "|".join(f"(?:{p[1:]})" for k, p in enumerate(_JUNK_START) if k not in _JUNK_START_SCANS)
)
_JUNK_START_SCANNED = [(cues, re.compile(_JUNK_START[k])) for k, cues in _JUNK_START_SCANS.items()]


def _junk_start(line: str) -> bool:
    """`JUNK_START.match(line)`, the scanning patterns tried only on a line holding their cue."""
    if not line.isascii():
        return JUNK_START.match(line)
    low = line.lower()
    if _JUNK_START_PLAIN.match(low):
        return True
    return any(any(cue in low for cue in cues) and rx.match(low) for cues, rx in _JUNK_START_SCANNED)
JUNK_ANYWHERE = [(triggers, re.compile(p, _I)) for triggers, p, _ in _JUNK_ANYWHERE]
JUNK_EXAMPLES = [example for _, _, example in _JUNK_ANYWHERE]


def any_of(words: set[str]) -> str:
    """A pattern found in a text exactly when one of `words` is, its alternatives nested by
    shared prefixes (re tries a flat alternation's every word at every position: a few times
    slower). A word that begins with another word is left out: the shorter one is found first."""
    trie: dict[str, Any] = {}
    for word in (w for w in words if not any(o != w and w.startswith(o) for o in words)):
        node = trie
        for char in word:
            node = node.setdefault(char, {})

    def alternation(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + alternation(rest) for char, rest in sorted(node.items())]
        return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})" if branches else ""

    return alternation(trie)


_ANY_TRIGGER = re.compile(any_of({t for triggers, _, _ in _JUNK_ANYWHERE for t in triggers}))

# A heading that opens the page's furniture after the story ("Related posts", "Most read").
SECTION_END = CaselessPattern(
    r"^(you may also like|you might also like|recommended( for you| stories| articles)?"
    r"|most popular|most read|most viewed|trending( now| stories)?|popular (posts|stories)"
    r"|related (posts|articles|stories|news|content|videos)|more (stories|news|articles) from"
    r"|more from|more in|don'?t miss|you missed|latest (news|stories|posts)|leave a (reply|comment)"
    r"|comments|what to read next|read next|up next|das könnte sie auch interessieren"
    r"|meistgelesen|à lire aussi|les plus lus|te puede interesar|lo más leído|veja também"
    r"|mais lidas|potrebbe interessarti|i più letti|artikel terkait|berita terkait|terpopuler"
    r"|популярное|관련기사|많이 본 기사)\b.{0,30}$",
)
# A heading or counter that opens the comments ("Top Rated Comments", "[ 167 comments ]").
COMMENTS_HEADING = CaselessPattern(
    r"^\W*(\w+\W+){0,3}(comments?|kommentare?|commentaires?|coment[aá]rios?|comentarios?"
    r"|commenti|komentar|комментари\w*|댓글|コメント)(\W+\w+){0,2}\W*$",
)
# A line that introduces a block of related headlines ("Read more:", "Lire aussi :").
LEAD_IN = CaselessPattern(
    r"^(read more|read also|also read|see also|related|related stories|related articles"
    r"|related coverage|more on this( story)?|more on|further reading|recommended reading"
    r"|lesen sie auch|mehr zum thema|lire aussi|à lire aussi|à lire également|lee también"
    r"|leia também|leia mais|leggi anche|baca juga|baca selengkapnya|читайте также"
    r"|смотрите также|관련 ?기사|또 다른 기사)\s*[:：.\-–—»>]*\s*$",
)
# "Read more: <headline>" on one line.
LEAD_IN_INLINE = CaselessPattern(
    r"^\[?(read more|read also|also read|see also|see more|related|more on this|more:|watch|listen"
    r"|lesen sie auch|lire aussi"
    r"|à lire aussi|lee también|leia também|leia mais|leggi anche|baca juga|читайте также)"
    r"\s*[:：\-–—»>]\s*\S",
)
BYLINE = CaselessPattern(r"^(by|written by|words by|von|par|por|di|oleh|от|取材|글)\s+\S.{0,80}$")
DATE_LINE = CaselessPattern(
    r"^(?=.*\d)[\w ,.:/|\-–—()]{0,30}\b(\d{1,2}[:.]\d{2}|\d{4}|(jan(uary)?|feb(ruary)?|mar(ch)?"
    r"|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?|nov(ember)?|dec(ember)?)\.?)"
    r"\b[\w ,.:/|\-–—()+]{0,40}$",
)


@short_text_cache(maxsize=8192)
def is_junk_line(line: str) -> bool:
    """True when the whole line is site furniture: share, follow, newsletter, cookie, credits."""
    if len(line) > 240 or len(line.split()) > 40:
        return bool(re.search(r"\bcookies?\b.{0,80}\b(consent|accept|policy)\b", line, _I))
    if _junk_start(line):
        return True
    low = line.lower()
    if not _ANY_TRIGGER.search(low):
        return False
    return any(any(t in low for t in triggers) and rx.search(line) for triggers, rx in JUNK_ANYWHERE)


def is_lead_in(line: str) -> bool:
    """True for a 'Read more:'-style line that introduces related headlines."""
    return bool(LEAD_IN.match(line))


MARKUP = re.compile(r"&(?:amp;)*[lg]t;|</?(?:span|div|p|a|img|script|iframe)\b[^>]*>", _I)


def is_markup(text: str) -> bool:
    """True for a paragraph of leaked or escaped HTML markup rather than prose."""
    return len(MARKUP.findall(text)) >= 2


def is_dropped_as_junk(text: str) -> bool:
    """True when a paragraph or line would be dropped as furniture by any boilerplate filter
    (the story-sentence check runs every true sentence through this)."""
    return bool(
        is_junk_line(text) or is_markup(text) or is_lead_in(text) or SECTION_END.match(text)
        or COMMENTS_HEADING.match(text)
    )
