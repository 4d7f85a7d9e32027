"""The entities step: seed-page targets, canonical grouping and aliases, junk, languages,
robustness."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from conftest import validate_event

from worker.cli.commands import describe_event
from worker.cpu import entity_model, tag_texts
from worker.document import ENTITY_LABELS, Article, Entity, RawPage
from worker.offline import process_lines
from worker.settings import Settings
from worker.steps.clean.page import clean
from worker.steps.entities.model import DEFAULT_MODEL, Tagger, skip_reason, tag
from worker.steps.entities.rules import entity_id

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parent.parent / "worker" / "samples"


@pytest.fixture(scope="session")
def model() -> Tagger:
    # The instance the worker's own `tag_texts` uses in this process: the models load once.
    return entity_model(DEFAULT_MODEL)


def _tagged(article: Article) -> Article:
    """The article with what the worker's tag stage gives it from `tag_texts`: entities, skip reason."""
    ((entities, skipped),) = tag_texts([article.text], [article.language], DEFAULT_MODEL, 16)
    return replace(article, entities=entities, entities_skipped=skipped)


@pytest.fixture(scope="session")
def seed(model: Tagger) -> tuple[str, list[Entity]]:
    text = (FIXTURES / "seed-page.expected-body.txt").read_text("utf-8")
    return text, tag([text], model)[0]


def _by_canonical(entities: list[Entity]) -> dict[str, Entity]:
    return {e.canonical: e for e in entities}


def test_model_is_ner_only(model: Tagger) -> None:
    assert model.nlp.pipe_names == ["ner"]


SEED = json.loads((FIXTURES / "seed-page.entities.json").read_text("utf-8"))


@pytest.mark.parametrize("want", SEED["must"], ids=lambda w: w["canonical"])
def test_seed_must(seed: tuple[str, list[Entity]], want: dict) -> None:
    text, entities = seed
    found = _by_canonical(entities).get(want["canonical"])
    assert found is not None, want["canonical"]
    assert found.label == want["label"]
    surfaces = {text[a:b] for a, b in found.mentions}
    assert set(want["aliases"]) <= surfaces
    # every occurrence of every alias is a mention of this entity
    for alias in want["aliases"]:
        assert sum(1 for a, b in found.mentions if text[a:b] == alias) >= 1


@pytest.mark.parametrize("bad", SEED["must_not"], ids=lambda b: f"{b['text']}-{b['label']}")
def test_seed_must_not(seed: tuple[str, list[Entity]], bad: dict) -> None:
    text, entities = seed
    for entity in entities:
        surfaces = {text[a:b] for a, b in entity.mentions} | {entity.canonical}
        if bad["text"] in surfaces:
            assert bad["label"] != "*" and entity.label != bad["label"]


def test_seed_zelenskyy_mentions_all_grouped(seed: tuple[str, list[Entity]]) -> None:
    text, entities = seed
    person = _by_canonical(entities)["Volodymyr Zelenskyy"]
    assert person.count == len(person.mentions) == text.count("Zelenskyy")
    assert all(text[a:b] in ("Volodymyr Zelenskyy", "Zelenskyy") for a, b in person.mentions)


def test_seed_sbu_all_mentions(seed: tuple[str, list[Entity]]) -> None:
    text, entities = seed
    sbu = _by_canonical(entities)["Security Service of Ukraine"]
    assert sum(1 for a, b in sbu.mentions if text[a:b] == "SBU") == text.count("SBU")


def test_entity_fields(seed: tuple[str, list[Entity]]) -> None:
    text, entities = seed
    saliences = [e.salience for e in entities]
    assert saliences == sorted(saliences, reverse=True)
    for e in entities:
        assert e.label in ENTITY_LABELS
        assert e.id == entity_id(e.label, e.canonical)
        assert e.text == e.canonical
        assert e.count == len(e.mentions) > 0
        assert 0.0 <= e.salience <= 1.0
        assert len(e.canonical) > 1
    assert len({e.id for e in entities}) == len(entities)


def test_ids_are_stable_across_articles(model: Tagger) -> None:
    a, b = tag(["Angela Merkel visited Paris on Monday.",
                "In Berlin, Angela Merkel spoke to reporters."], model)
    ids_a = {e.canonical: e.id for e in a}
    ids_b = {e.canonical: e.id for e in b}
    assert ids_a["Angela Merkel"] == ids_b["Angela Merkel"]


def test_titles_and_the_are_stripped(model: Tagger) -> None:
    text = ("President Joe Biden met the United Nations chief on Monday. "
            "Mr Biden said the talks were useful.")
    entities = tag([text], model)[0]
    names = _by_canonical(entities)
    assert "Joe Biden" in names and names["Joe Biden"].label == "PERSON"
    assert names["Joe Biden"].count == 2
    assert "United Nations" in names
    assert not any(c.startswith(("the ", "The ", "Mr ", "President ")) for c in names)


def test_parenthesised_acronym(model: Tagger) -> None:
    text = ("The World Health Organization (WHO) warned on Tuesday. "
            "A WHO spokesman said more data was needed.")
    names = _by_canonical(tag([text], model)[0])
    who = names["World Health Organization"]
    assert who.label == "ORG"
    assert [text[a:b] for a, b in who.mentions].count("WHO") == 2


def test_initials_acronym(model: Tagger) -> None:
    text = ("Officers of the Federal Bureau of Investigation searched the house. "
            "The FBI declined to comment.")
    names = _by_canonical(tag([text], model)[0])
    assert "FBI" not in names
    assert "FBI" in {text[a:b] for a, b in names["Federal Bureau of Investigation"].mentions}


def test_share_prompts_are_junk(model: Tagger) -> None:
    text = ("Follow Sky News on WhatsApp\n\nThe mayor of Chicago, Brandon Johnson, spoke.\n\n"
            "Share on Facebook")
    names = _by_canonical(tag([text], model)[0])
    assert "WhatsApp" not in names and "Facebook" not in names and "Sky News" not in names
    assert names["Chicago"].label == "GPE"


@pytest.mark.parametrize("text", [
    "", " ", "\n\n\n", "!!! ??? ...", "x", "12 345 6789", "\x00\x01\ufffd" * 50,
    "<html><body>" + "<div>&nbsp;</div>" * 200, "A" * 5000, "Москва и Киев. Zürich—Genève!",
    ("Paris. " * 3000),
])
def test_never_crashes(model: Tagger, text: str) -> None:
    result = tag([text], model)[0]
    assert isinstance(result, list)
    for e in result:
        assert all(0 <= a < b <= len(text) for a, b in e.mentions)


def test_huge_text_offsets(model: Tagger) -> None:
    paragraph = "Volodymyr Zelenskyy spoke in Kyiv about Russia.\n\n"
    text = paragraph * 500  # ~25k chars, tagged in chunks
    entities = tag([text], model)[0]
    kyiv = _by_canonical(entities)["Kyiv"]
    assert kyiv.count == 500
    assert all(text[a:b] == "Kyiv" for a, b in kyiv.mentions)


def test_batch_keeps_order(model: Tagger) -> None:
    texts = ["Kyiv is the capital of Ukraine.", "", "Angela Merkel led Germany."]
    result = tag(texts, model, batch_size=2)
    assert len(result) == 3 and result[1] == []
    assert "Angela Merkel" in _by_canonical(result[2])


def test_span_across_paragraphs_is_cut(model: Tagger) -> None:
    text = ("Follow us on Twitter\nShare this article on Facebook\n\n"
            "Elon Musk said Tesla would grow.")
    entities = tag([text], model)[0]
    for entity in entities:
        assert all("\n" not in text[a:b] for a, b in entity.mentions)
    assert "Elon Musk" in _by_canonical(entities)


def test_document_consistency_one_type_per_name(seed: tuple[str, list[Entity]]) -> None:
    text, entities = seed
    types: dict[str, set[str]] = {}
    for entity in entities:
        if entity.label == "LANGUAGE":
            continue
        for a, b in entity.mentions:
            types.setdefault(text[a:b], set()).add(entity.label)
    assert all(len(labels) == 1 for labels in types.values()), types


def test_full_seed_page_share_prompts(model: Tagger) -> None:
    text = (FIXTURES / "seed-page.txt").read_text("utf-8")
    names = _by_canonical(tag([text], model)[0])
    assert "Sky News" not in names and "WhatsApp" not in names
    assert names["Volodymyr Zelenskyy"].label == "PERSON"


def test_platform_named_in_a_sentence_is_kept(model: Tagger) -> None:
    text = "Angela Merkel said it on Twitter."
    names = _by_canonical(tag([text], model)[0])
    assert "Angela Merkel" in names and names.get("Twitter") is not None


def _sample_article(name: str, url: str) -> Article:
    """A shipped demo page, cleaned by the clean step."""
    html = gzip.open(SAMPLES / name).read().decode("utf-8")
    article = clean(RawPage(url=url, html=html))
    assert isinstance(article, Article)
    return article


@pytest.fixture(scope="session")
def helicopter(model: Tagger) -> Article:
    article = _sample_article("aljazeera-helicopter.html.gz",
                              "https://www.aljazeera.com/news/2019/11/helicopter-crash.html")
    return _tagged(article)


def test_country_aliases_are_one_entity_in_a_real_article(helicopter: Article) -> None:
    text = helicopter.text
    assert "United States" in text and "the US military" in text
    countries = [e for e in helicopter.entities
                 if {text[a:b] for a, b in e.mentions} & {"US", "United States"}]
    assert len(countries) == 1
    (united_states,) = countries
    assert united_states.canonical == "United States" and united_states.label == "GPE"
    assert {text[a:b] for a, b in united_states.mentions} == {"US", "United States"}
    assert helicopter.entities_skipped is None


def test_every_country_alias_joins_one_entity(model: Tagger) -> None:
    text = ("The United States imposed new sanctions on Monday. A U.S. official said America "
            "would not wait, and the US Treasury published the list. Britain and the UK "
            "government said they would follow.")
    entities = tag([text], model)[0]
    by_surface = {text[a:b]: e for e in entities for a, b in e.mentions}
    for alias in ("U.S.", "America", "US"):
        if alias in by_surface:
            assert by_surface[alias] is by_surface["United States"], alias
    assert by_surface["United States"].canonical == "United States"
    assert sum(1 for e in entities if e.canonical == "United States") == 1
    if "UK" in by_surface:
        assert by_surface["UK"].canonical == by_surface["Britain"].canonical == "United Kingdom"


def test_alias_alone_takes_the_canonical_name(model: Tagger) -> None:
    a, b = tag(["Officials in the US said talks would resume.",
                "The United States said talks would resume."], model)
    assert {e.id for e in a if e.label == "GPE"} == {e.id for e in b if e.label == "GPE"}


def test_surname_and_acronym_link_in_a_real_article(helicopter: Article) -> None:
    text = helicopter.text
    names = _by_canonical(helicopter.entities)
    spokesman = names["Zabihullah Mujahid"]
    assert {text[a:b] for a, b in spokesman.mentions} == {"Zabihullah Mujahid", "Mujahid"}


def test_article_in_another_language_is_not_tagged(model: Tagger) -> None:
    korean = _sample_article("entermedia-ko.html.gz",
                             "http://entermedia.co.kr/news/news_view.html?idx=8576")
    assert korean.language == "ko"
    assert tag([korean.text], model)[0]  # what the English model would wrongly make of it
    ((entities, skipped),) = tag_texts([korean.text], [korean.language], DEFAULT_MODEL, 16)
    assert entities == []
    assert skipped is not None and "'ko'" in skipped
    assert tag([korean.text], model, languages=["ko"]) == [[]]


def test_language_skip_is_reported_in_the_event() -> None:
    # The stages the worker runs (decode, clean, dedup, tag, publish), over the two raw pages.
    pages = {
        "http://entermedia.co.kr/news/news_view.html?idx=8576": "entermedia-ko.html.gz",
        "https://www.aljazeera.com/news/2019/11/helicopter-crash.html": "aljazeera-helicopter.html.gz",
    }
    lines = [orjson.dumps({"url": url, "html": gzip.open(SAMPLES / name).read().decode("utf-8")})
             for url, name in pages.items()]
    events = {e["url"]: e for e in process_lines(lines, Settings()) if e["event_type"] == "article.v1"}
    event, english = (events[url] for url in pages)
    validate_event(event)
    assert event["entities"] == [] and "'ko'" in event["processing"]["entities_skipped"]
    assert "entities: - (no entity model for language 'ko'" in describe_event(event)
    validate_event(english)
    assert english["entities"] and "entities_skipped" not in english["processing"]


def test_batch_with_mixed_languages(model: Tagger) -> None:
    texts = ["Angela Merkel led Germany.", "Angela Merkel led Germany.", "Angela Merkel led Germany."]
    result = tag(texts, model, languages=["en", "de", None])
    assert result[0] and result[2] and result[1] == []
    with pytest.raises(ValueError):
        tag(texts, model, languages=["en"])
    assert skip_reason("en", model) is None and skip_reason(None, model) is None


FRENCH = ("Le président Emmanuel Macron a reçu le chancelier Olaf Scholz à Paris mardi. La "
          "Commission européenne a salué l’accord entre la France et l’Allemagne. « Nous "
          "avançons », a déclaré Macron devant la presse.")


def test_french_article_is_tagged_by_the_french_model(model: Tagger) -> None:
    assert "fr" in model.other_packages and skip_reason("fr", model) is None
    entities = tag([FRENCH], model, languages=["fr"])[0]
    names = _by_canonical(entities)
    assert names["Emmanuel Macron"].label == "PERSON"
    assert {FRENCH[a:b] for a, b in names["Emmanuel Macron"].mentions} == {"Emmanuel Macron", "Macron"}
    assert names["France"].label == "GPE" and "la France" not in names
    assert all(e.label in ENTITY_LABELS for e in entities)
    article = _tagged(Article(url="https://x.example/fr", title="t", text=FRENCH, mode="text", language="fr"))
    assert article.entities and article.entities_skipped is None


@pytest.mark.parametrize("text, surface", [
    ("Kyiv and Kyiv-based groups met in Kyiv.", "Kyiv"),
    ("Ann_Lee, Ann, Anna, xAnn and (Ann) and Ann", "Ann"),
    ("AAA AA AAAA AA", "AA"),
    ("Zelenskyy’s aide; Zelenskyy2 and Zelenskyyé", "Zelenskyy"),
    ("U.S. and U.S.A. and the U.S.", "U.S."),
    ("", "Ann"),
    ("no name here", "Ann"),
])
def test_occurrences_are_whole_words_as_the_regex_defines_them(text: str, surface: str) -> None:
    import re

    from worker.steps.entities.rules import _occurrences

    pattern = re.compile(rf"(?<![\w-]){re.escape(surface)}(?![\w-])")
    assert _occurrences(text, surface) == [m.span() for m in pattern.finditer(text)]


def test_a_part_of_a_country_name_joins_the_country_only_when_the_document_names_it() -> None:
    """"Emirates" alone (an airline's story) keeps its own name; beside "United Arab Emirates"
    or "UAE" in the same document it is the country."""
    from worker.steps.entities.gazetteer import load_gazetteer
    from worker.steps.entities.rules import resolve

    gazetteer = load_gazetteer()

    def emirates(text: str) -> str:
        """The canonical name of the entity the last "Emirates" mention belongs to."""
        raw = [(m.start(), m.end(), "GPE") for m in re.finditer(r"United Arab Emirates|UAE|Emirates", text)]
        spans = [span for span in raw if not any(o[0] <= span[0] and span[1] <= o[1] and o != span for o in raw)]
        at = text.rindex("Emirates")
        (entity,) = [e for e in resolve(text, spans, gazetteer) if (at, at + 8) in e.mentions]
        return entity.canonical

    assert emirates("Emirates added a fourth daily flight to London. Emirates said demand was strong.") == "Emirates"
    assert emirates("The United Arab Emirates signed the deal. The Emirates will invest.") == "United Arab Emirates"
    assert emirates("The UAE signed the deal. The Emirates will invest.") == "United Arab Emirates"
