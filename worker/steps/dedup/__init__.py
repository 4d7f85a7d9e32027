"""Deduplication: a fingerprint per article (`fingerprint`, pool side), what counts as the same
story (`policy`), and the state the decision is kept in over a window (`index`)."""

from worker.steps.dedup.fingerprint import Fingerprint, article_id, fingerprint
from worker.steps.dedup.index import Decision, DedupIndex

__all__ = ["Decision", "DedupIndex", "Fingerprint", "article_id", "fingerprint"]
