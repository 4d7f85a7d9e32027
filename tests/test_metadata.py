"""Page metadata (`clean.metadata`): publication date, authors and title of HTML pages and text
dumps, and `ingest-worker eval metadata` with its metric."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.cli import main as cli_main
from worker.document import Article, RawPage
from worker.evaluation import date_model_training
from worker.evaluation.date_model_training import DatedPage
from worker.evaluation.metadata import Labelled, author_found, date_right, fold_dates, main, site_fold, title_exact
from worker.steps.clean import metadata
from worker.steps.clean.date_model import DateModel, shipped_date_model
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.metadata import (
    DATE_FEATURES,
    PageMeta,
    dump_meta,
    is_organisation,
    is_person,
    read_meta,
    shown_dates,
    split_authors,
)
from worker.steps.clean.page import clean

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = FIXTURES / "pages"
STORY = (
    "<p>The harbour reopened on Monday after the storm that closed it for a week, officials said, "
    "and the first ferries sailed in the afternoon with crews checking the piers.</p>"
)


def _meta(head: str, body: str, url: str = "https://news.example.com/2024/harbour") -> PageMeta:
    tree = parse_html(f"<html><head>{head}</head><body>{body}{STORY}</body></html>")
    assert tree is not None
    return read_meta(drop_code(tree), url)


def _rules(head: str, body: str, url: str = "https://news.example.com/2024/harbour") -> PageMeta:
    """`_meta` with the date the rules give the page (`choose_date`, which reads text dumps and
    is measured beside the model): the HTML reader's own date is its model's choice among the
    same days."""
    inputs: list[tuple[Any, ...]] = []
    real = metadata.date_sources
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metadata, "date_sources", lambda *args: inputs.append(args) or real(*args))
        meta = _meta(head, body, url)
    return replace(meta, published_at=metadata.choose_date(*inputs[0]))


def _ld(**fields: object) -> str:
    return f"<script type='application/ld+json'>{json.dumps({'@type': 'NewsArticle', **fields})}</script>"


# --- dates ----------------------------------------------------------------------------------


def test_published_date_shown_on_the_page_keeps_its_time_zone() -> None:
    meta = _meta(
        _ld(datePublished="2024-03-05T22:10:00-05:00", dateModified="2024-03-09T08:00:00-05:00"),
        "<h1>Harbour reopens after the storm</h1><p>By Ana Ruiz</p><p>March 5, 2024</p>",
    )
    assert meta.published_at == "2024-03-05T22:10:00-05:00"


def test_a_written_out_timestamp_keeps_its_zone() -> None:
    meta = _meta(_ld(datePublished="20 Nov 2019 08:02 GMT"),
                 "<h1>Harbour reopens after the storm</h1><p>20 Nov 2019</p>")
    assert meta.published_at == "2019-11-20T08:02:00+00:00"


def test_published_not_modified_even_when_the_page_shows_only_its_update() -> None:
    meta = _meta(
        "<meta property='article:published_time' content='2019-08-14T13:00:00Z'>"
        "<meta property='article:modified_time' content='2025-09-17T00:00:00Z'>",
        "<h1>Harbour reopens after the storm</h1><p>Updated Sep 17, 2025</p>",
    )
    assert meta.published_at == "2019-08-14T13:00:00Z"


def test_the_url_day_agreeing_with_the_structured_date_is_the_story_day() -> None:
    utc = _meta(_ld(datePublished="2025-12-19T02:41:41+00:00"),
                "<h1>Harbour reopens after the storm</h1><p>December 18, 2025</p>",
                url="https://news.example.com/2025/12/18/harbour")
    assert utc.published_at == "2025-12-18"  # the url's day, the moment is the next day in UTC
    template = _meta(_ld(datePublished="2021-01-18"),
                     "<h1>Harbour reopens after the storm</h1><p>April 12, 2022</p>",
                     url="https://news.example.com/2021/01/18/harbour")
    assert template.published_at == "2021-01-18"
    named = _meta("", "<h1>Harbour reopens after the storm</h1><p>03/10/2023</p>",
                  url="https://news.example.com/blog/2023/october/03/harbour")
    assert named.published_at == "2023-10-03"


def test_the_structured_date_the_page_shows_and_the_header_before_labelled_days_elsewhere() -> None:
    two = _meta("<meta property='article:published_time' content='2025-12-19'>"
                + _ld(datePublished="2018-04-03T16:50:31Z"),
                "<h1>Harbour reopens after the storm</h1><p>Dec 19, 2025</p>")
    assert two.published_at == "2025-12-19"
    review = _meta("", "<h1>Harbour reopens after the storm</h1><p>by Amanda · Dec 20, 2025</p>" + STORY * 3
                       + "<p>A Far Better Thing. Released: June 17, 2025 by Tor Books</p>")
    assert review.published_at == "2025-12-20"
    original = _meta("", "<h1>Harbour reopens after the storm</h1><p>Chris Carroll</p><p>30 Sep 2022</p>" + STORY
                         + "<p>This article was originally published on 26 Sep 2019.</p>")
    assert original.published_at == "2019-09-26"

def test_rules_a_byline_of_editors_is_not_an_edit_label() -> None:
    meta = _rules("", "<p>Friday, December 19, 2025</p><h1>Harbour reopens after the storm</h1>"
                     "<p>By The Currency editors 12.12.2025</p>")
    assert meta.published_at == "2025-12-12"

def test_no_date_rather_than_a_guess() -> None:
    # a copyright year, an opening-hours day and a date range are not the story's date
    meta = _meta(
        "<title>Harbour reopens after the storm</title>",
        "<p>Open today, March 14, 2026</p><h1>Harbour reopens after the storm</h1>"
        "<p>Offer valid from January 16, 2025 to January 20, 2025</p><footer>© 2024 Harbour News</footer>",
    )
    assert meta.published_at is None


def test_an_update_date_only_when_the_page_states_no_publication_date() -> None:
    update_only = _meta("", "<h1>Harbour reopens after the storm</h1><p>Last updated: November 13, 2025</p>")
    assert update_only.published_at == "2025-11-13"
    both = _meta("", "<h1>Harbour reopens after the storm</h1><p>Updated November 13, 2025</p>"
                     "<p>Published November 2, 2025</p>")
    assert both.published_at == "2025-11-02"


def test_date_shown_next_to_the_headline_when_nothing_structured() -> None:
    meta = _meta("", "<h1>Harbour reopens after the storm</h1><p>By Ana Ruiz · 12 November 2025</p>")
    assert meta.published_at == "2025-11-12"


def test_rules_a_date_only_the_json_ld_states_and_the_page_never_shows_is_not_the_storys() -> None:
    # the page shows only its update: that day is the one it gives its story
    updated = _rules(
        _ld(datePublished="2019-08-14T13:00:00Z", dateModified="2025-09-17T08:00:00Z"),
        "<h1>Harbour reopens after the storm</h1><p>Updated Sep 17, 2025</p>",
    )
    assert updated.published_at == "2025-09-17T08:00:00Z"  # the time the structured update gives
    # shown nowhere: no date rather than the JSON-LD's
    hidden = _rules(_ld(datePublished="2019-08-14T13:00:00Z"), "<h1>Harbour reopens after the storm</h1>")
    assert hidden.published_at is None
    # a publication meta tag stating the same day keeps it
    tagged = _rules(
        _ld(datePublished="2019-08-14T13:00:00Z")
        + "<meta property='article:published_time' content='2019-08-14T13:00:00Z'>",
        "<h1>Harbour reopens after the storm</h1><p>Updated Sep 17, 2025</p>",
    )
    assert tagged.published_at == "2019-08-14T13:00:00Z"


def test_a_template_date_the_page_never_shows_gives_way_to_the_shown_one() -> None:
    meta = _meta(
        _ld(datePublished="2025-06-24"),
        "<h1>Harbour reopens after the storm</h1><p>Shauna Mitchell</p><p>August 25, 2024</p>",
    )
    assert meta.published_at == "2024-08-25"



def test_the_day_beside_the_byline_when_the_headline_is_reworded() -> None:
    # the <title> and the page's heading differ: the header is not found, the byline is
    meta = _meta(
        "<title>Spice Cayenne: a new data accelerator</title>",
        "<h2>Introducing the next-generation accelerator built for scale</h2>"
        "<p>Written by Moses Kim and Kate Shokurova</p><p>April 8, 2024</p>",
    )
    assert meta.authors == ["Moses Kim", "Kate Shokurova"] and meta.published_at == "2024-04-08"
    labelled = _meta("", STORY * 2 + "<p>Post time: 01-04-2024</p>")
    assert labelled.published_at == "2024-01-04"


def test_rules_an_update_after_the_byline_is_no_publication_date() -> None:
    meta = _rules(
        "<title>Spice Cayenne: a new data accelerator</title>",
        "<h2>Introducing the next-generation accelerator built for scale</h2>"
        "<p>Written by Moses Kim</p><p>Updated May 3, 2024</p>" + STORY * 3
        + "<p>Published on January 1, 2024</p>",
    )
    assert meta.published_at == "2024-01-01"


def test_rules_the_authors_name_in_a_box_above_the_headline_lends_no_date() -> None:
    for above in ("<nav><a>Moses Kim</a> <span>Jan 9, 2019 archive</span></nav>",
                  "<aside><p>More by Moses Kim</p><p>Jan 9, 2019</p></aside>"):
        meta = _rules(  # the heading is reworded from the <title>: the byline is what places the date
            "<title>Spice Cayenne: a new data accelerator</title>",
            above + "<h2>Introducing the next-generation accelerator</h2>"
            "<p>Written by Moses Kim</p><p>April 8, 2024</p>",
            "https://news.example.com/harbour",
        )
        assert meta.published_at == "2024-04-08"


def test_rules_a_related_item_date_does_not_beat_the_day_next_to_the_headline() -> None:
    meta = _rules(
        "",
        "<h1>Harbour reopens after the storm</h1><p>03/01/2017 by Agatha Caleo</p>" + STORY * 5
        + "<ul class='news'><li><time datetime='2025-01-31T12:00:00Z'>01/31/2025</time> Careers month</li></ul>",
    )
    assert meta.published_at == "2017-03-01"


def test_rules_a_numeric_day_read_as_the_page_states_it_and_an_offer_deadline_is_no_date() -> None:
    meta = _rules(
        _ld(**{"@type": "WebPage", "datePublished": "2025-12-02"}),
        "<h1>Harbour reopens after the storm</h1><time class='entry-date' datetime='02-12-2025'>02-12-2025</time>",
    )
    assert meta.published_at == "2025-12-02"
    offer = _rules("<meta property='article:published_time' content='2020-02-10T16:48:12Z'>",
                  "<p>Limited Time Offer ~ Redeem by 12.31.23</p><h1>Harbour reopens after the storm</h1>")
    assert offer.published_at == "2020-02-10T16:48:12Z"


def test_a_headline_ending_in_a_range_word_does_not_hide_the_date_under_it() -> None:
    meta = _meta("", "<h1>A Car Maintenance Schedule That's Easy to Follow</h1><span>Oct 11, 2023</span>")
    assert meta.published_at == "2023-10-11"
    ranged = _meta("", "<h1>Harbour reopens after the storm</h1><p>Valid from May 1, 2023 to May 9, 2023</p>")
    assert ranged.published_at is None

def test_shown_dates_spellings() -> None:
    days = [d.isoformat() for d, _ in shown_dates(
        "Sept. 4, 2025 | 4th September 2025 | 2025-09-04 | 12.11.2025 | posted 3 days ago"
    )]
    assert days.count("2025-09-04") == 3
    assert {"2025-12-11", "2025-11-12"} <= set(days)  # 12.11.2025 read both ways
    more = [d.isoformat() for d, _ in shown_dates("Jul. 11. 2025 | 11-Jul-2025 | 2025•07•11 | 2025年7月11日")]
    assert more == ["2025-07-11"] * 4
    cited = [d.isoformat() for d, _ in shown_dates("Cureus. 2023 Jan 7;15(1) | Pricing Guide 2026 Dec 26, 2025")]
    assert cited == ["2023-01-07", "2025-12-26"]  # a citation's day; a headline's year is not one


def test_a_day_shown_without_its_year_confirms_the_structured_date() -> None:
    meta = _meta(_ld(datePublished="2022-07-11T02:00:00-04:00"),
                 "<h1>Harbour reopens after the storm</h1><p>Jul 11</p><p>Written By Ana Ruiz</p>")
    assert meta.published_at == "2022-07-11T02:00:00-04:00"


def test_rules_words_and_dates_with_a_year_are_not_yearless_days() -> None:
    # '5 decades' is not 5 December; '11 July 2025' shows another year than the JSON-LD's.
    decades = _rules(_ld(datePublished="2025-12-05T10:00:00Z"),
                    "<h1>Harbour reopens after the storm</h1><p>Updated Jan 3, 2026</p>"
                    "<p>After 5 decades of waiting, the harbour is open.</p>")
    years = _rules(_ld(datePublished="2025-12-05T10:00:00Z"),
                  "<h1>Harbour reopens after the storm</h1><p>Updated Jan 3, 2026</p>"
                  "<p>After 5 years of waiting, the harbour is open.</p>")
    assert decades.published_at == years.published_at
    other_year = _rules(_ld(datePublished="2019-07-11T10:00:00Z"),
                       "<h1>Harbour reopens after the storm</h1><p>11 July 2025</p>")
    assert other_year.published_at is not None and other_year.published_at.startswith("2025-07-11")


def test_rules_a_meta_tag_date_is_kept_when_the_json_ld_states_another() -> None:
    head = (_ld(datePublished="2025-03-01T10:00:00Z")
            + '<meta property="article:published_time" content="2025-05-20T08:00:00Z">')
    meta = _rules(head, "<h1>Harbour reopens after the storm</h1><p>The harbour reopened on Tuesday.</p>")
    assert meta.published_at is not None and meta.published_at.startswith("2025-05-20")


# --- authors ---------------------------------------------------------------------------------


def test_json_ld_people_split_and_the_site_name_only_when_it_signs_the_post() -> None:
    meta = _meta(
        _ld(author=[{"@type": "Person", "name": "Ana Ruiz"}, {"@type": "Person", "name": "Tom Berg"},
                    {"@type": "Organization", "name": "Harbour News"}],
            publisher={"@type": "Organization", "name": "Harbour News"}),
        "<h1>Harbour reopens after the storm</h1><p>By Ana Ruiz and Tom Berg</p>",
    )
    assert meta.authors == ["Ana Ruiz", "Tom Berg"]
    organisation = _meta(
        _ld(author={"@type": "Organization", "name": "Al Jazeera"},
            publisher={"@type": "Organization", "name": "Al Jazeera"}),
        "<h1>Harbour reopens after the storm</h1>",
    )
    assert organisation.authors == []  # the site, although "Al" is a given name
    site_only = _meta(
        "<meta property='og:site_name' content='Harbour News'><meta name='author' content='Harbour News'>",
        "<h1>Harbour reopens after the storm</h1>",
    )
    assert site_only.authors == []  # the site's name fields alone, and the page does not show it
    signed = _meta(
        "<meta property='og:site_name' content='Swoogo'>" + _ld(author={"@type": "Organization", "name": "Swoogo"}),
        "<h1>Harbour reopens after the storm</h1><p>By Swoogo</p>",
    )
    assert signed.authors == ["Swoogo"]  # a company's post signed by the company, no person named
    template = _meta(
        "<meta property='og:site_name' content='Stitch Data'>"
        + _ld(author={"@type": "Organization", "name": "Stitch Data"}, publisher={"name": "Stitch Data"}),
        "<header><a href='/'>Stitch Data</a></header><h1>Harbour reopens after the storm</h1>",
    )
    assert template.authors == []  # the JSON-LD author is the publisher, and nothing on the page signs with it
    plain = _meta("<meta property='og:site_name' content='EcoFlow'>",
                  "<h1>Harbour reopens after the storm</h1><span class='post-author'>EcoFlow</span>")
    assert plain.authors == ["EcoFlow"]


def test_byline_line_with_credentials_and_several_authors() -> None:
    meta = _meta("", "<h1>Harbour reopens after the storm</h1><div>By Jillian Kubala, MS, RD and Tom Berg</div>")
    assert meta.authors == ["Jillian Kubala", "Tom Berg"]
    assert split_authors("By Danielle DeSiato, Donna Enzmann, and Natalie Nguyen") == [
        "Danielle DeSiato", "Donna Enzmann", "Natalie Nguyen"
    ]


def test_staff_bylines_are_organisations_given_only_without_a_person() -> None:
    assert is_organisation("Podium Staff") and is_organisation("The Investopedia Team")
    assert not is_person("Podium Staff") and is_person("Ana Ruiz")
    staff = _meta("", "<h1>Harbour reopens after the storm</h1><span class='author'>Podium Staff</span>")
    assert staff.authors == ["Podium Staff"]
    both = _meta(
        "<meta name='author' content='Ana Ruiz'>",
        "<h1>Harbour reopens after the storm</h1><span class='author'>Podium Staff</span>",
    )
    assert both.authors == ["Ana Ruiz"]


def test_comment_form_and_comment_authors_are_not_bylines() -> None:
    meta = _meta(
        "", "<h1>Harbour reopens after the storm</h1>" + STORY * 8 + "<div id='comments'><span "
        "class='comment-author'>Jane Smith</span><label class='author'>Name *</label></div>",
    )
    assert meta.authors == []



def test_author_named_by_a_link_to_the_author_page_or_a_twitter_label() -> None:
    linked = _meta("", "<h1>Harbour reopens after the storm</h1><p><span>by </span>"
                       "<a href='/articles/authors/ana-ruiz'>Ana Ruiz</a></p>")
    assert linked.authors == ["Ana Ruiz"]
    related = _meta("", "<h1>Harbour reopens after the storm</h1>" + STORY * 4 +
                        "<div class='related-posts'><a href='/author/tom-berg/'>Tom Berg</a></div>")
    assert related.authors == []
    labelled = _meta("<meta name='twitter:label1' content='Written by'><meta name='twitter:data1' content='aawoods'>",
                     "<h1>Harbour reopens after the storm</h1>")
    assert labelled.authors == ["aawoods"]


def test_byline_element_credits_of_others_left_out() -> None:
    meta = _meta("", "<h1>Harbour reopens after the storm</h1><div class='byline'>By <a>Ana Ruiz</a> "
                     "<span>Updated by</span> <a>Tom Berg</a> <span>Updated April 10, 2025</span></div>")
    assert meta.authors == ["Ana Ruiz"]
    assert split_authors("Authors: Julie Weisenhorn and Natalie Hoidal") == ["Julie Weisenhorn", "Natalie Hoidal"]


def test_a_site_calling_itself_a_person_is_not_the_author() -> None:
    meta = _meta(
        "<meta property='og:site_name' content='Harbour Clinic'>"
        + _ld(author={"@type": "Person", "name": "Harbour Clinic"}),
        "<h1>Harbour reopens after the storm</h1><p>by Tracy Parker, Dietitian</p>",
    )
    assert meta.authors == ["Tracy Parker"]
    personal = _meta(
        "<meta property='og:site_name' content='Ash Vardanian'>"
        + _ld(author={"@type": "Person", "name": "Ash Vardanian"}),
        "<h1>Harbour reopens after the storm</h1>",
    )
    assert personal.authors == ["Ash Vardanian"]



def test_a_handle_marked_as_the_author_and_a_name_given_whole_where_a_source_has_it() -> None:
    handle = _meta("", "<h1>Harbour reopens after the storm</h1><div class='header-byline'>By "
                       "<a href='/member/HarbourWatcher/' rel='author'>HarbourWatcher</a> in Workshop</div>")
    assert handle.authors == ["HarbourWatcher"]
    whole = _meta("", "<h1>Harbour reopens after the storm</h1><span class='author-name'>Marta</span>"
                      + STORY * 3 + "<p>Written by Marta Oliveira</p>")
    assert whole.authors == ["Marta Oliveira"]


def test_a_pen_name_in_a_byline_element_a_body_class_no_aside_and_a_co_author_with() -> None:
    pen = _meta("", "<h1>Harbour reopens after the storm</h1><span class='post-author'>Quilla</span>")
    assert pen.authors == ["Quilla"]
    for label in ("Advertisement", "Sponsored", "Posted", "Loading", "Admin"):
        furniture = _meta("", f"<h1>Harbour reopens after the storm</h1><span class='post-author'>{label}</span>")
        assert furniture.authors == [], label
    tree = parse_html("<html><body class='single-post menu'><h1>Harbour reopens after the storm</h1>"
                      f"<div class='post-meta'>By: <a href='/author/ray/'>Ray Ansari</a></div>{STORY}</body></html>")
    assert tree is not None
    assert read_meta(drop_code(tree), "https://news.example.com/harbour").authors == ["Ray Ansari"]
    assert split_authors("By Tom Berg with Ana Lund") == ["Tom Berg", "Ana Lund"]


# --- titles ----------------------------------------------------------------------------------


def test_title_is_the_headline_not_the_title_with_the_site_name() -> None:
    meta = _meta(
        "<title>Harbour reopens after the storm | Harbour News</title>"
        "<meta property='og:title' content='Harbour reopens, ferries sail again'>",
        "<h1>Harbour News</h1><h1>Harbour reopens after the storm</h1>",
    )
    assert meta.title == "Harbour reopens after the storm"
    logo = _meta(
        "<title>Harbour reopens after the storm - Harbour News</title><meta property='og:site_name' "
        "content='Harbour News'>", "<h1>Weather desk</h1>",
    )
    assert logo.title == "Harbour reopens after the storm"


# --- real pages and text dumps ---------------------------------------------------------------


def _fixture_article(prefix: str) -> Article:
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    page_id = next(i for i in truth if i.startswith(prefix))
    html = gzip.decompress((PAGES / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
    article = clean(RawPage(url=truth[page_id]["url"], html=html))
    assert isinstance(article, Article)
    return article


def test_real_pages() -> None:
    wired = _fixture_article("2f42ef1d")
    assert (wired.authors, wired.published_at) == (["Molly Wood"], "2019-11-14T14:00:00+00:00")
    macrumors = _fixture_article("232a43fb")
    assert macrumors.authors == ["Joe Rossignol"] and macrumors.published_at == "2019-11-18T10:45:00+00:00"
    rt = _fixture_article("4a44ab3e")
    # The JSON-LD author is the site, RT, which no author tag or byline names: no author.
    assert rt.authors == []
    korean = _fixture_article("0ec95c72")
    assert korean.published_at == "2018-08-25"  # 기사입력 : 2018-08-25 15:24 under the headline


def test_dump_byline_and_date_lines_between_headline_and_story() -> None:
    dump = (
        "Menu\nSign in\nHarbour reopens after the storm\nBy Ana Ruiz and Tom Berg\n"
        "Tuesday 12 November 2025 09:30 GMT\n"
        + STORY[3:-4] + "\n\nThe port authority said repairs would go on for another month.\n"
    )
    stated = dump_meta(dump, "Harbour reopens after the storm", STORY[3:-4])
    assert stated.authors == ["Ana Ruiz", "Tom Berg"] and stated.published_at == "2025-11-12"
    glued = dump_meta(
        "Harbour reopens after the storm\n  By Korin MillerPublished: Jan 29, 2025\n" + STORY[3:-4],
        "Harbour reopens after the storm", STORY[3:-4],
    )
    assert glued.authors == ["Korin Miller"] and glued.published_at == "2025-01-29"
    listed = dump_meta("Harbour reopens after the storm\n  by\n    * Taya Iv\n    16 min read\n" + STORY[3:-4],
                       "Harbour reopens after the storm", STORY[3:-4])
    assert listed.authors == ["Taya Iv"]


def test_dump_date_at_another_showing_of_the_headline_or_above_the_story() -> None:
    story = STORY[3:-4]
    # The headline shown twice: the byline and date under its first showing (the header), the
    # second a breadcrumb's far below.
    repeated = dump_meta(
        "Harbour reopens after the storm\nBy Ana Ruiz\nDecember 12, 2024\n4 minute read\n"
        + "Menu item\n" * 60 + "Harbour reopens after the storm\n" + story,
        "Harbour reopens after the storm", story,
    )
    assert repeated.authors == ["Ana Ruiz"] and repeated.published_at == "2024-12-12"
    # The headline the dump cleaner found is another story's: the lines above the story date it.
    above = dump_meta(
        "Ferry prices rise\n" + "Menu item\n" * 80 + "By Chris Radich\n| December 17, 2025\n" + story
        + "\nRelated\nBy admin\nJanuary 11, 2025\n",
        "Ferry prices rise", story,
    )
    assert above.published_at == "2025-12-17"
    # The story's first paragraph shown above the headline as a teaser: the headline after it.
    teaser = dump_meta(
        story + "\nBack to blog\nHarbour reopens after the storm\nPosted by Peter Bell on August 21, 2019\n" + story,
        "Harbour reopens after the storm", story,
    )
    assert teaser.published_at == "2019-08-21"
    # No day in the dump: the url's.
    dated_url = dump_meta("Harbour reopens after the storm\n" + story, "Harbour reopens after the storm", story,
                          "https://news.example.com/2025/12/18/harbour-reopens/")
    assert dated_url.published_at == "2025-12-18"


def test_byline_names_end_before_the_date_or_a_label_on_their_line() -> None:
    story = STORY[3:-4]
    for line, name in (
        ("By Sofia Gonzalez December 2, 2025", "Sofia Gonzalez"),
        ("By Ana Ruiz on 21 January 2023", "Ana Ruiz"),
        ("By Dr. Vahid Osman - Mar 27, 2024", "Dr. Vahid Osman"),
        ("By Richard Garner Updated Sep 5, 2024", "Richard Garner"),
        ("Kristian Larsen July 13, 2025 — 7 minutes read", "Kristian Larsen"),
    ):
        headline = "Harbour reopens after the storm"
        stated = dump_meta(f"{headline}\n{line}\n{story}", headline, story)
        assert stated.authors == [name], line


def test_dump_with_its_headline_shown_thousands_of_times_reads_a_bounded_number_of_showings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A related-links block repeating the headline 2,000 times: each showing was read over the
    # whole dump (its days, its 'Written by' line), quadratic in the dump's size.
    from worker.steps.clean import metadata

    title, story = "Harbour reopens after the storm", STORY[3:-4]
    related = "".join(f"{title}\nShare\nComments ({k})\n" for k in range(2000))
    whole_reads: list[int] = []
    read_whole = metadata._whole
    monkeypatch.setattr(metadata, "_whole", lambda lines: whole_reads.append(len(lines)) or read_whole(lines))
    stated = dump_meta(related + title + "\nBy Ana Ruiz | March 3, 2025\n" + story, title, story)
    assert stated.authors == ["Ana Ruiz"] and stated.published_at == "2025-03-03"
    assert len(whole_reads) == 2  # the dump once, the lines above the story once


def test_dump_whose_headline_shows_only_in_related_posts_after_the_story_takes_no_date_from_them() -> None:
    story, title = STORY[3:-4], "Council votes on new budget"
    dump = (f"Menu\nHome\n{story}\nRelated posts\nFerry prices rise again\nApril 5, 2021\nBy Tom Hale\n"
            f"{title}\nMay 9, 2022\n")
    assert dump_meta(dump, title, story).published_at is None
    assert dump_meta(dump, title, story, "https://news.example.com/2025/12/18/budget/").published_at == "2025-12-18"


def test_seed_dump_gets_no_date_or_byline_from_its_related_posts() -> None:
    seed = (FIXTURES / "seed-page.txt").read_text(encoding="utf-8")
    article = clean(RawPage(url="https://news.example.com/world/story-1", text=seed))
    assert isinstance(article, Article)
    assert article.authors == [] and article.published_at is None  # "By admin • January 11, 2025" below


# --- the evaluation --------------------------------------------------------------------------


def test_metric() -> None:
    assert author_found("Dylan Bailey, MS, RD, FAND", ["Dylan Bailey"])
    assert author_found("Manoj Jain and Jagpreet Chhatwal", ["Manoj Jain", "Jagpreet Chhatwal"])
    assert not author_found("Manoj Jain and Jagpreet Chhatwal", ["Manoj Jain and Jagpreet Chhatwal x"])
    assert not author_found("Ana Ruiz", ["Ana Ruiz", "Harbour News"])  # a site name added
    assert author_found("The Currency editors", ["The Currency editors"])
    assert author_found("Genevieve Carlton, Ph.D.", ["By Genevieve Carlton"])
    assert not author_found("Ana Ruiz", [])
    assert title_exact("FDA's Concerns", "FDA’s  concerns") and not title_exact("A b", "A b c")
    assert date_right("2025-01-29", "2025-01-29T18:10:00-05:00") and not date_right("2025-01-29", None)
    assert site_fold("https://www.a.example/x", 5) == site_fold("https://a.example/y", 5)


def test_eval_on_a_labelled_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    labels = {
        "2f42ef1d": ("The Future of Banking Is … You're Broke", "Molly Wood", "2019-11-14"),
        "232a43fb": ("13-Inch MacBook Pro With Scissor Keyboard Expected in First Half of 2020",
                     "Joe Rossignol", "2019-11-18"),
        "0ec95c72": ("엘제이-류화영 진흙탕 싸움, 공적인 사안으로 봐야하는 이유", None, "2018-08-25"),
    }
    folder = tmp_path / "data"
    (folder / "html").mkdir(parents=True)
    (folder / "text").mkdir()
    ground = {}
    for page_id, record in truth.items():
        label = labels.get(page_id[:8])
        if label is None:
            continue
        shutil.copy(PAGES / "html" / f"{page_id}.html.gz", folder / "html")
        shutil.copy(PAGES / "text" / f"{page_id}.txt", folder / "text")
        ground[page_id] = {"url": record["url"], "title": label[0], "author": label[1], "published": label[2],
                           "page_type": "article"}
    (folder / "ground-truth.json").write_text(json.dumps(ground), encoding="utf-8")
    out = tmp_path / "predictions.json"
    assert main(["--data", str(folder), "--folds", "2", "--rules-from", "1", "--mode", "both",
                 "--predictions-out", str(out)]) == 0
    captured = capsys.readouterr()
    report = captured.out
    # three pages in two folds: a fold whose other fold cannot train a date model says so
    assert "not held out" in captured.err
    for words in ("date right", "author found", "title exact", "trafilatura", "previous", "clean text",
                  "CPU a page"):
        assert words in report
    predictions = json.loads(out.read_text(encoding="utf-8"))
    assert set(predictions) == {"clean", "previous", "trafilatura", "clean text"}
    assert cli_main(["eval", "metadata", "--data", str(folder), "--folds", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    pooled = {**figures["articles"].get("held_out", {}), **figures["articles"].get("training", {})}
    assert pooled["clean"]["pages_dated"] >= 1 and 0.0 <= pooled["clean"]["date_right"] <= 1.0
    both = [figures["articles"][k]["clean"] for k in ("held_out", "training") if k in figures["articles"]]
    assert sum(f["date_right"] * f["pages_dated"] for f in both) == 3  # every page on its day
    assert sum(f["title_exact"] * f["pages_titled"] for f in both) == 3
    assert figures["cpu_ms_per_page"]["clean"] > 0


def _dated_pages(count: int) -> list[DatedPage]:
    """Pages whose labelled day is the one a publication meta tag states; their other candidate
    is a modified day, and every fifth page is labelled with no date and states only the latter."""
    tagged, modified = DATE_FEATURES.index("in_tagged"), DATE_FEATURES.index("in_modified")
    pages = []
    for k in range(count):
        published, changed = date(2024, 1, 1) + timedelta(days=k), date(2025, 6, 1) + timedelta(days=k)
        row_published, row_changed = [0.0] * len(DATE_FEATURES), [0.0] * len(DATE_FEATURES)
        row_published[tagged] = row_changed[modified] = 1.0
        undated = k % 5 == 0
        candidates = [(changed, row_changed)] if undated else [(published, row_published), (changed, row_changed)]
        pages.append(DatedPage(f"p{k}", f"site{k}.example", True, None if undated else published.isoformat(),
                               candidates))
    return pages


def test_a_date_model_learns_which_source_states_the_publication_day_and_abstains_elsewhere() -> None:
    pages = _dated_pages(60)
    model = date_model_training.train(pages)
    given = date_model_training.given(model, pages)
    assert all((day.isoformat() if day else None) == page.label for page, day in zip(pages, given, strict=True))
    assert date_model_training.utility(pages, given) == 48  # 48 dated right, none wrong, 12 undated left so
    assert DateModel.from_json(model.to_json()).choose(pages[1].candidates) == date(2024, 1, 2)


def test_the_shipped_date_model_reads_the_readers_features() -> None:
    assert shipped_date_model().features == DATE_FEATURES
    assert 0.0 < shipped_date_model().threshold < 1.0


def test_eval_dates_each_fold_with_a_model_trained_on_the_others(tmp_path: Path) -> None:
    pages = _dated_pages(80)
    labels = {p.page_id: {"url": f"https://{p.host}/story", "published": p.label, "page_type": "article"}
              for p in pages}
    stated = {p.page_id: ([(d, row) for d, row in p.candidates], [d.isoformat() + "T08:00:00+02:00"
                                                                  for d, _ in p.candidates]) for p in pages}
    dates = fold_dates(Labelled(tmp_path, labels), stated, 4)
    assert set(dates) == set(labels)  # every fold's pages dated by the model of the other folds
    for page in pages:
        expected = f"{page.label}T08:00:00+02:00" if page.label else None
        assert dates[page.page_id] == expected  # the stated time zone kept


def test_a_calendar_of_thousands_of_days_reads_a_bounded_number_of_candidates() -> None:
    # 20,000 <time> elements (an archive or calendar page): each candidate day was compared with
    # every stated day, quadratic in the page's size (seconds of CPU for a 700 KB page).
    first = date(1995, 1, 1)
    days = "".join(f"<li><time datetime='{first + timedelta(days=k)}'>x</time></li>" for k in range(20_000))
    meta = _meta("", f"<h1>Harbour reopens after the storm</h1><ul>{days}</ul>")
    bound = len(metadata.DATE_SOURCES) * metadata.DATE_SOURCE_DAYS + metadata.DATE_CANDIDATES_SHOWN
    assert 0 < len(meta.date_candidates) <= bound


def _page(head: str, body: str, fetched_at: str | None) -> RawPage:
    return RawPage(url="https://news.example.com/harbour", fetched_at=fetched_at,
                   html=f"<html><head>{head}</head><body><h1>Harbour reopens after the storm</h1>{body}"
                        f"{STORY * 4}</body></html>")


@pytest.mark.parametrize("fetched_at", ["2026-12-06T10:00:00Z", None])
def test_no_publication_date_after_the_day_the_page_was_read(fetched_at: str | None) -> None:
    ld = ('<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Harbour reopens",'
          ' "datePublished": "2100-12-31T10:00:00Z"}</script>')
    article = clean(_page(ld, "", fetched_at))
    assert isinstance(article, Article) and article.published_at is None
    # a two-digit year read in the wrong century ('99' as 2099) is no date either
    article = clean(_page("", "<p>By Ann Lee | Posted 03/14/99</p>", fetched_at))
    assert isinstance(article, Article) and article.published_at is None


def test_a_date_after_the_fetch_is_dropped_but_one_before_it_is_kept() -> None:
    tagged = '<meta property="article:published_time" content="2024-05-02T09:00:00+02:00">'
    shown = "<p>May 2, 2024</p>"
    kept = clean(_page(tagged, shown, "2024-05-02T08:00:00Z"))
    assert isinstance(kept, Article) and kept.published_at == "2024-05-02T09:00:00+02:00"
    dropped = clean(_page(tagged, shown, "2023-01-01T00:00:00Z"))
    assert isinstance(dropped, Article) and dropped.published_at is None


def test_the_last_publication_day_is_the_utc_day_after_the_fetch() -> None:
    from worker.steps.clean.page import latest_day

    assert latest_day("2026-12-06T23:59:00-11:00") == date(2026, 12, 8)  # 10:59 UTC on the 7th
    assert latest_day("2026-12-06T00:30:00+14:00") == date(2026, 12, 6)  # 10:30 UTC on the 5th
    assert latest_day("2026-12-06") == date(2026, 12, 7)
    assert latest_day("9999-12-31T23:59:59-12:00") == date.max
    assert latest_day("9999-12-31T12:00:00Z") == date.max
    for unknown in (None, "", "garbage", "1970-01-01T00:00:00Z"):  # the clock's day then
        assert latest_day(unknown) >= date(2026, 12, 6)
