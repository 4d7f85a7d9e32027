"""The CPU-heavy work, as picklable functions: run in the step pool by `run`, inline by `process`."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from worker.document import Dropped, Entity, Prepared, RawPage
from worker.errors import internal_error
from worker.steps.dedup import article_id, fingerprint

if TYPE_CHECKING:  # spaCy loads only in processes that tag
    from worker.steps.entities import Tagger


def prepare(page: RawPage) -> Prepared | Dropped:
    """clean + fingerprint one page; a step that raises becomes a Dropped naming the step."""
    from worker.steps.clean import clean  # imported in the processes that clean, not the worker's main one

    started = time.perf_counter()
    try:
        cleaned = clean(page)
    except Exception as exc:  # any failure on one page must not stop the stream
        return internal_error(exc, "clean")
    if isinstance(cleaned, Dropped):
        return cleaned
    cleaned.stage_seconds["clean"] = time.perf_counter() - started
    try:
        fp = fingerprint(cleaned, page.text if cleaned.mode == "text" else None)
    except Exception as exc:
        return internal_error(exc, "dedup")
    return Prepared(cleaned, fp.to_bytes(), article_id(cleaned.url, fp.content_hash))


_models: dict[str, Tagger] = {}

# A text's entities, and why it got none when its language has no model (else None).
Tagged = tuple[list[Entity], str | None]


def entity_model(model_name: str) -> Tagger:
    """The entity models named `model_name`, loaded on the first call in this process."""
    from worker.steps import entities

    model = _models.get(model_name)
    if model is None:
        model = _models[model_name] = entities.load_model(model_name)
    return model


def tag_texts(
    texts: Sequence[str], languages: Sequence[str | None], model_name: str, batch_size: int
) -> list[Tagged]:
    """Entities of each text by the model of its language (each model is loaded once per process)."""
    from worker.steps import entities

    model = entity_model(model_name)
    found = entities.tag(texts, model, batch_size=batch_size, languages=languages)
    return [(ents, entities.skip_reason(language, model)) for ents, language in zip(found, languages, strict=True)]


# Cleaning allocates a great many short-lived objects (lxml's element proxies, trafilatura's
# strings); at Python's default young generation of 700 objects the cyclic collector runs
# thousands of times a page and re-scans what survives. 50,000 cut cleaning's CPU by 9% in
# eight paired rounds over the dedup dev pages (same output), for a few MB more memory.
COLLECTOR_THRESHOLDS = (50_000, 20, 20)


def warm_up(model_name: str) -> None:
    """Ready this process for the steps ahead of the first page: the cleaning code imported, the
    collector's thresholds (`COLLECTOR_THRESHOLDS`) and the entity models loaded."""
    import worker.steps.clean.page  # noqa: F401  # the cleaning stack, before the first page needs it

    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    tag_texts([""], [None], model_name, 1)


def no_entities(
    texts: Sequence[str], languages: Sequence[str | None], model_name: str, batch_size: int
) -> list[Tagged]:
    """Stand-in for `tag_texts` when a run needs no entities (dedup evaluation)."""
    return [([], None) for _ in texts]
