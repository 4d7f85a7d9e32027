"""Named entities: a spaCy model plus document-level rules and gazetteers."""

from worker.steps.entities.model import (
    DEFAULT_MODEL,
    Tagger,
    load_model,
    skip_reason,
    tag,
)

__all__ = ["DEFAULT_MODEL", "Tagger", "load_model", "skip_reason", "tag"]
