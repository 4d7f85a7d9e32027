"""The entities step: seed-page targets, canonical grouping, junk, robustness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.document import ENTITY_LABELS, Entity
from worker.steps.entities.model import Tagger, load_model, tag
from worker.steps.entities.rules import entity_id

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def model() -> Tagger:
    return load_model()


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


def test_royal_title_is_part_of_the_name(model: Tagger) -> None:
    text = "Prince Andrew gave an interview. Andrew later stepped back from royal duties."
    names = _by_canonical(tag([text], model)[0])
    assert names["Prince Andrew"].label == "PERSON"
    assert names["Prince Andrew"].count == 2


def test_span_across_paragraphs_is_cut(model: Tagger) -> None:
    text = ("Follow us on Twitter\nShare this article on Facebook\n\n"
            "Elon Musk said Tesla would grow.")
    entities = tag([text], model)[0]
    for entity in entities:
        assert all("\n" not in text[a:b] for a, b in entity.mentions)
    assert "Elon Musk" in _by_canonical(entities)


def test_languages_are_not_nationalities(model: Tagger) -> None:
    text = ("Russian troops crossed the border. The prisoners do not speak Ukrainian, English or "
            "Russian, officials said.")
    entities = tag([text], model)[0]
    labels = {(text[a:b], e.label) for e in entities for a, b in e.mentions}
    assert ("English", "LANGUAGE") in labels
    assert ("Russian", "NORP") in labels and ("Russian", "LANGUAGE") in labels


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
