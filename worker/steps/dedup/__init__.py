"""Deduplication: a fingerprint per article and the exact/near-duplicate decision over a window."""

from worker.steps.dedup.index import Decision, DedupIndex, Fingerprint, article_id, fingerprint

__all__ = ["Decision", "DedupIndex", "Fingerprint", "article_id", "fingerprint"]
