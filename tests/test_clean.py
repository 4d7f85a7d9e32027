"""The clean step: the seed page, real-page regressions, metadata, drops and robustness."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from worker.document import Article, Dropped, RawPage
from worker.steps.clean import boilerplate
from worker.steps.clean.boilerplate import (
    JUNK_ANYWHERE,
    JUNK_EXAMPLES,
    JUNK_START,
    CaselessPattern,
    is_dropped_as_junk,
    is_junk_line,
)
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.language import detect_language, normalize_code
from worker.steps.clean.metadata import read_meta
from worker.steps.clean.normalize import join_paragraphs, normalize_line, repair_mojibake
from worker.steps.clean.page import clean, iso_date, source_domain

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = FIXTURES / "pages"
TRUTH = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))


def _page_id(prefix: str) -> str:
    return next(i for i in TRUTH if i.startswith(prefix))


def _html_page(prefix: str) -> RawPage:
    page_id = _page_id(prefix)
    html = gzip.decompress((PAGES / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
    return RawPage(url=TRUTH[page_id]["url"], html=html, fetched_at="2019-11-20T10:00:00Z")


def _text_page(prefix: str) -> RawPage:
    page_id = _page_id(prefix)
    text = (PAGES / "text" / f"{page_id}.txt").read_text(encoding="utf-8")
    return RawPage(url=TRUTH[page_id]["url"], text=text)


def _article(page: RawPage) -> Article:
    result = clean(page)
    assert isinstance(result, Article), result
    return result


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


# --- the seed page -------------------------------------------------------------------------


def test_seed_page_title_and_body_exactly_as_expected() -> None:
    seed = (FIXTURES / "seed-page.txt").read_text(encoding="utf-8")
    title = (FIXTURES / "seed-page.expected-title.txt").read_text(encoding="utf-8").strip()
    body = (FIXTURES / "seed-page.expected-body.txt").read_text(encoding="utf-8")
    article = _article(RawPage(url="https://news.example.com/world/story-1", text=seed))
    assert article.mode == "text"
    assert article.title == title
    assert _paragraphs(article.text) == _paragraphs(body)
    assert "\n\n\n" not in article.text
    assert article.language == "en"
    assert article.source_domain == "news.example.com"
    assert article.entities == [] and article.stage_seconds == {}


# --- real pages: sentences that must be kept, junk that must go ----------------------------

HTML_CASES = [
    (
        "2f42ef1d",
        [
            "The latest wave of tech-based financial startups",
            "In fact, the idea that the solution to our financial woes",
            "A second problem is more serious.",
        ],
        [],
    ),
    (
        "4a44ab3e",
        ["In addition to the three fatalities at a fuel plant on Tuesday", "he died in my hands"],
        ["Like this story? Share it with a friend!", "Also on rt.com"],
    ),
    (
        "0ec95c72",
        ["첫 번째 시선으로서", "이 사안이 보다 명백하게 무엇이 진실인가가"],
        ["무단전재 및 재배포금지"],
    ),
    (
        "55bb6340",
        ["Brace yourself, Swifties", "It's worth noting that it's not uncommon"],
        ["Start your day with the Opening Bell", "Sign up for The Water Coolest today"],
    ),
    (
        "232a43fb",
        ["The entry-level 13-inch MacBook Pro was last updated in July"],
        ["Top Rated Comments", "Night mode is an automatic setting"],
    ),
]

TEXT_CASES = [
    (
        "2f42ef1d",
        ["The latest wave of tech-based financial startups", "A second problem is more serious."],
        [],
    ),
    (
        "4a44ab3e",
        ["Three people have died during protests in Bolivia", "he died in my hands"],
        ["Like this story? Share it with a friend!", "Also on rt.com", "Follow RT on", "Miss Moscow 2018"],
    ),
    (
        "232a43fb",
        [
            "Apple plans to release a new 13-inch MacBook Pro with a scissor switch keyboard",
            "The entry-level 13-inch MacBook Pro was last updated in July",
        ],
        ["Top Rated Comments", "Thanks for letting me ramble on", "Night mode is an automatic"],
    ),
    (
        "55bb6340",
        ["Brace yourself, Swifties", "T-Swift took to Twitter to air her grievances"],
        ["Start your day with the Opening Bell", "Podcasts"],
    ),
    (
        "0ec95c72",
        ["첫 번째 시선으로서", "이 사안이 보다 명백하게 무엇이 진실인가가"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("mode", "prefix", "kept", "gone"),
    [("html", *case) for case in HTML_CASES] + [("text", *case) for case in TEXT_CASES],
)
def test_real_pages(mode: str, prefix: str, kept: list[str], gone: list[str]) -> None:
    article = _article(_html_page(prefix) if mode == "html" else _text_page(prefix))
    assert article.mode == mode
    flat = " ".join(article.text.split())
    for sentence in kept:
        assert sentence in flat
    for junk in gone:
        assert junk not in flat


def test_text_dump_title_is_the_headline() -> None:
    article = _article(_text_page("4a44ab3e"))
    assert article.title.startswith("‘He died in my hands’: 3 pro-Morales demonstrators")
    macrumors = _article(_text_page("232a43fb"))
    assert macrumors.title == ("13-Inch MacBook Pro With Scissor Keyboard Expected in First Half of 2020")


def test_html_metadata() -> None:
    article = _article(_html_page("4a44ab3e"))
    assert "Morales" in article.title
    assert article.source_domain == "rt.com"
    assert article.canonical_url and article.canonical_url.startswith("https://www.rt.com/")
    assert article.language == "en"
    assert article.fetched_at == "2019-11-20T10:00:00Z"
    assert article.published_at and article.published_at.startswith("2019-11-")
    korean = _article(_html_page("0ec95c72"))
    assert korean.language == "ko"
    assert korean.title == "엘제이-류화영 진흙탕 싸움, 공적인 사안으로 봐야하는 이유"


def test_language_from_page_wins() -> None:
    page = _text_page("4a44ab3e")
    article = _article(RawPage(url=page.url, text=page.text, language="en-GB"))
    assert article.language == "en"


# --- drops ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        RawPage(url="https://a.example/", html="<html><body></body></html>"),
        RawPage(url="https://a.example/", html="<html><body><p>Too short.</p></body></html>"),
        RawPage(url="https://a.example/", text="Home\nNews\nSport\nWeather\n"),
        RawPage(url="https://a.example/", text="   \n\n "),
    ],
)
def test_pages_without_an_article_are_dropped(page: RawPage) -> None:
    result = clean(page)
    assert isinstance(result, Dropped)
    assert result.reason == "empty_after_cleaning"
    assert page.url in result.detail and len(result.detail) > 40


def test_page_with_neither_html_nor_text_is_unsupported() -> None:
    result = clean(RawPage(url="https://a.example/x"))
    assert isinstance(result, Dropped) and result.reason == "unsupported_content"


@pytest.mark.parametrize(
    "markup",
    [
        "\x00\x01\x02\xff\xfe binary junk \x89PNG\r\n\x1a\n" * 50,
        "<html><<<>>><body><p>unclosed <b><i>tags" * 100,
        '<?xml version="1.0" encoding="utf-8"?><html><body><p>x</p></body></html>',
        "<p>" + "word " * 200_000 + "</p>",
        "<div>" * 5000 + "deep" + "</div>" * 5000,
        "<html><head><script type='application/ld+json'>{not json</script></head></html>",
    ],
)
def test_garbage_html_never_crashes(markup: str) -> None:
    result = clean(RawPage(url="https://a.example/x", html=markup))
    assert isinstance(result, Article | Dropped)


@pytest.mark.parametrize("where", ["tail", "before", "sibling"])
def test_control_characters_beside_a_dropped_script_keep_the_text_around_it(where: str) -> None:
    """lxml's parser keeps control characters that lxml then refuses to set: moving a script's
    tail on dropping the script must not raise, and no text is lost."""
    script = {"tail": "<script>x()</script>\x01 the tail", "before": "\x02<script>x()</script> the tail",
              "sibling": "<b>bold</b>\x03<script>x()</script> the tail"}[where]
    markup = f"<html><body><h1>Budget approved</h1><p>{_PROSE} Words before {script} after it.</p></body></html>"
    tree = drop_code(parse_html(markup))
    assert tree.find(".//script") is None
    assert "the tail after it." in tree.text_content()
    result = clean(RawPage(url="https://c.example/a", html=markup))
    assert isinstance(result, Article | Dropped)


def test_garbage_text_never_crashes() -> None:
    junk = "".join(chr(c) for c in range(0, 0x3000, 7)) * 20
    result = clean(RawPage(url="not a url", text=junk))
    assert isinstance(result, Article | Dropped)
    if isinstance(result, Article):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.text)


def test_fragment_and_plain_text_in_the_html_field() -> None:
    fragment = clean(RawPage(url="https://f.example/a", html=_story(3)))
    assert isinstance(fragment, Article) and fragment.mode == "html"
    assert "Part 1 paragraph 2 of the story" in fragment.text
    plain = "\n\n".join(["Home", "Budget approved", *[f"{k}: {_PROSE}" for k in range(4)]])
    as_text = clean(RawPage(url="https://f.example/b", html=plain))
    assert isinstance(as_text, Article) and as_text.mode == "text"


def test_deterministic() -> None:
    page = _html_page("55bb6340")
    assert clean(page) == clean(page)


# --- unicode and whitespace ----------------------------------------------------------------


def test_text_is_nfc_without_controls_and_mojibake() -> None:
    story = (
        "Itâ€™s a cafe\u0301 story\x07 about the mayorâ€™s plan, and it goes on for a while "
        "with enough words to count as a real paragraph of news."
    )
    text = (
        "Menu\n\nHome\n\n"
        + "\n\n".join(
            [story] * 1
            + [
                f"Paragraph {k} of the story continues here with more words about the plan and why "
                "the city council argued about it for hours on Tuesday."
                for k in range(5)
            ]
        )
        + "\n\n\n\nShare this article\n\nFollow us on Facebook"
    )
    article = _article(RawPage(url="https://b.example/story", text=text))
    assert "It’s a café story about the mayor’s plan" in article.text
    assert "\x07" not in article.text
    assert "Share this article" not in article.text
    assert re.fullmatch(r"(?:[^\n]+\n\n)*[^\n]+", article.text)


def test_normalize_helpers() -> None:
    assert repair_mojibake("Ã©tÃ© â€œquotedâ€\x9d") == "été “quoted”"
    assert repair_mojibake("café déjà vu") == "café déjà vu"
    assert normalize_line(" a\u00a0\u00a0b\u200b c\t") == "a b c"
    assert join_paragraphs(["one ", "", "two"]) == "one\n\ntwo"


def test_small_helpers() -> None:
    assert source_domain("https://www.example.co.uk/a?b") == "example.co.uk"
    assert source_domain("::") == ""
    markup = "<html><head><link rel='canonical' href='/news/story-1'></head><body>" + _story(3) + "</body></html>"
    article = _article(RawPage(url="https://www.example.org/news/story-1?utm=x", html=markup))
    assert article.canonical_url == "https://www.example.org/news/story-1"
    assert article.source_domain == "example.org"
    assert iso_date("2019-11-18T07:45:00Z") == "2019-11-18T07:45:00+00:00"
    assert iso_date("2019-11-18") == "2019-11-18"
    assert iso_date("yesterday") is None
    assert iso_date("Mon, 18 Nov 2019 07:45:00 GMT") == "2019-11-18T07:45:00+00:00"


# --- synthetic pages for single behaviours -------------------------------------------------

_PROSE = (
    "The council voted on Tuesday to approve the new budget for the coming year, after a long "
    "debate about schools, roads and the cost of running the city's buses."
)


def _story(n: int, start: int = 1, tag: str = "p") -> str:
    return "".join(f"<{tag}>Part {start} paragraph {k} of the story: {_PROSE}</{tag}>" for k in range(n))


def test_html_split_body_and_sidebar_teaser() -> None:
    markup = (
        "<html lang='en'><head><title>Budget approved</title></head><body>"
        "<div class='outer'><div class='rail'><div class='story-body'>" + _story(4) + "</div></div>"
        "<div class='rail'><div class='story-body'><p>Unique later paragraph: the mayor said "
        "the vote was a turning point for the city, and that buses would run later at night.</p>"
        + _story(2, start=2)
        + "</div></div></div>"
        "<aside class='sidebar'><a href='/other'><p>Another story entirely about a football "
        "match that ended in a draw after a long and dull evening, fans said.</p></a></aside>"
        "</body></html>"
    )
    article = _article(RawPage(url="https://c.example/budget", html=markup))
    assert "Unique later paragraph" in article.text
    assert "football" not in article.text
    assert article.title == "Budget approved"


def test_text_dump_read_more_block_comments_and_byline() -> None:
    lines = [
        "Home",
        "* News",
        "* Sport",
        "Budget approved after long debate",
        "By Jane Doe",
        "12 March 2024 10:30",
        *[f"{_PROSE} Paragraph {k} adds its own detail." for k in range(3)],
        "Read more:",
        "Mayor opens new bridge",
        "Buses to run later",
        *[f"{_PROSE} Later paragraph {k} continues." for k in range(3)],
        "Share this article",
        "Comments",
        *[f"I think this is a great decision, says reader {k}, and they should do more of it." for k in range(12)],
    ]
    # a news address: the page's kind (article) picks its selection rule, which ends the story
    # at the comments heading (a page read as a forum or a listing keeps the runs after it)
    url = "https://d.example/news/2024/03/12/budget-approved-after-long-debate"
    article = _article(RawPage(url=url, text="\n\n".join(lines)))
    assert article.title == "Budget approved after long debate"
    assert "Later paragraph 2 continues." in article.text
    for junk in ("Mayor opens new bridge", "Read more", "By Jane Doe", "reader", "Share this"):
        assert junk not in article.text
    assert len(_paragraphs(article.text)) == 6


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("The minister said that the plan would be ready by the end of the year.", "en"),
        ("Der Minister sagte, dass der Plan bis zum Ende des Jahres fertig sein wird.", "de"),
        ("Le ministre a dit que le plan sera prêt pour la fin de l'année et pour tous.", "fr"),
        ("El ministro dijo que el plan estará listo para el final del año con los demás.", "es"),
        ("O ministro disse que o plano estará pronto até o fim do ano para todos os que.", "pt"),
        ("Il ministro ha detto che il piano sarà pronto per la fine dell'anno e per tutti.", "it"),
        ("Menteri mengatakan bahwa rencana itu akan siap pada akhir tahun ini dan untuk.", "id"),
        ("Министр сказал, что план будет готов к концу года и что это не все.", "ru"),
        ("장관은 그 계획이 연말까지 준비될 것이라고 말했다", "ko"),
        ("大臣は計画が年末までに準備できると述べた。", "ja"),
        ("12 34 56", None),
    ],
)
def test_detect_language(text: str, code: str | None) -> None:
    assert detect_language(text) == code


def test_language_codes() -> None:
    assert normalize_code("en-US") == "en"
    assert normalize_code("pt_BR") == "pt"
    assert normalize_code("english") is None
    assert normalize_code(None) is None


def test_text_dump_story_split_by_a_related_box() -> None:
    council = [
        f"The city council budget vote {k} followed a long debate about schools, roads and "
        "buses, and the council members argued about the cost of the new budget plan."
        for k in range(6)
    ]
    lines = [
        "Menu",
        "Council approves the budget",
        *council[:3],
        "More in City Politics",
        "Mayor opens new bridge",
        "Parks get new benches",
        "Library hours extended",
        "Police chief retires",
        "Schools close early",
        *council[3:],
        "Most read",
        "Weather: a sunny weekend ahead",
        "A long teaser about a football match that ended in a draw after a dull evening, as "
        "the fans went home early and the coach said little to the waiting reporters.",
    ]
    article = _article(RawPage(url="https://e.example/x", text="\n\n".join(lines)))
    assert _paragraphs(article.text) == council


def test_declared_language_checked_against_the_text() -> None:
    german = " ".join(
        f"Der Rat hat am Dienstag den Haushalt für das Jahr {k} beschlossen, und die "
        "Mitglieder sagten, dass die Schulen und die Straßen mehr Geld bekommen."
        for k in range(4)
    )
    markup = f"<html lang='en'><body><article><p>{german}</p><p>{german}</p></article></body></html>"
    article = _article(RawPage(url="https://g.example/a", html=markup))
    assert article.language == "de"
    told = _article(RawPage(url="https://g.example/a", html=markup, language="en"))
    assert told.language == "en"  # the producer's word wins


def test_html_title_is_the_headline_not_the_logo_or_site_suffix() -> None:
    story = "".join(
        f"<p>Paragraph {n} of the story tells what happened in the city council today.</p>" for n in range(6)
    )
    markup = (
        "<html><head><title>Council approves new budget after long debate - Citypaper</title></head>"
        f"<body><header><h1>City Paper</h1></header><article>{story}</article></body></html>"
    )
    article = clean(RawPage(url="https://www.citypaper.example/news/1", html=markup))
    assert isinstance(article, Article)
    assert article.title == "Council approves new budget after long debate"


# --- boilerplate filters -------------------------------------------------------------------


def test_story_sentences_survive_the_boilerplate_filters() -> None:
    raw = gzip.decompress((FIXTURES / "story-sentences.txt.gz").read_bytes()).decode("utf-8")
    sentences = raw.splitlines()
    assert len(sentences) > 4000
    ordinary = sentences[:4]  # news sentences that name a share, a policy, a newsletter, a contact
    assert not any(is_dropped_as_junk(s) for s in ordinary)
    dropped = [s for s in sentences if is_dropped_as_junk(s)]
    assert len(dropped) / len(sentences) < 0.005, dropped


def test_every_junk_pattern_fires_through_its_triggers() -> None:
    assert len(JUNK_EXAMPLES) == len(JUNK_ANYWHERE)
    for (triggers, pattern), example in zip(JUNK_ANYWHERE, JUNK_EXAMPLES, strict=True):
        assert pattern.search(example), example
        assert any(t in example.lower() for t in triggers), example
        assert is_junk_line(example), example


def test_caseless_patterns_answer_as_case_insensitive_regexes() -> None:
    raw = gzip.decompress((FIXTURES / "story-sentences.txt.gz").read_bytes()).decode("utf-8")
    lines = raw.splitlines() + [
        "RELATED POSTS", "Related Poſts", "Read More: the day after", "BY JANE DOE", "JAN 5, 2024",
        "Comments (3)", "KOMMENTARE", "Share this", "Photo Ⓒ Yonhap", "ıscriviti alla newsletter",
    ]
    lines += [line.upper() for line in lines]
    patterns = {name: value for name, value in vars(boilerplate).items() if isinstance(value, CaselessPattern)}
    assert len(patterns) >= 7
    for name, pattern in patterns.items():
        reference = re.compile(pattern.pattern, re.IGNORECASE | re.UNICODE)
        for line in lines:
            assert pattern.match(line) == (reference.match(line) is not None), (name, line)


def test_the_junk_start_check_with_its_cues_answers_as_the_whole_pattern() -> None:
    raw = gzip.decompress((FIXTURES / "story-sentences.txt.gz").read_bytes()).decode("utf-8")
    lines = raw.splitlines() + [
        "Share", "Follow us on Twitter", "Abonnez-vous à notre lettre", "Jetzt abonnieren und sparen",
        "Suscríbete al boletín", "Photo © Yonhap", "2024 ⓒ Example", "Read our Privacy Policy here",
        "Terms of Service and Cookie Policy", "terms and conditions apply", "Advertisement",
    ]
    lines += [line.upper() for line in lines]
    scanning = {k for k, p in enumerate(boilerplate._JUNK_START) if p.startswith(("^.", "^[^"))}
    assert scanning == set(boilerplate._JUNK_START_SCANS)  # every scanning pattern has its cues
    for line in lines:
        assert boilerplate._junk_start(line) == JUNK_START.match(line), line


@pytest.mark.parametrize("pattern", [r"^Read more", r"^(poſt|posts)\b", "^\u212aommentar"])
def test_a_caseless_pattern_that_lowering_would_change_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        CaselessPattern(pattern)


def test_scripts_and_styles_go_before_extraction_json_ld_and_tail_text_stay() -> None:
    markup = (
        "<html><head><style>p { color: red }</style><script type='application/ld+json'>"
        '{"@type": "NewsArticle", "headline": "Harbour reopens after the storm"}</script></head>'
        "<body><p>The harbour reopened on Monday<script>track('x')</script> after the storm, "
        "officials said.</p></body></html>"
    )
    tree = drop_code(parse_html(markup))
    assert [el.get("type") for el in tree.iter("script", "style")] == ["application/ld+json"]
    assert tree.find(".//p").text_content() == (
        "The harbour reopened on Monday after the storm, officials said."
    )
    assert read_meta(tree).title == "Harbour reopens after the storm"
