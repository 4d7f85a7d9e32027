"""RawPage -> Article | Dropped (placeholder)."""
from worker.document import Article, Dropped, RawPage


def clean(page: RawPage) -> Article | Dropped:
    """Placeholder."""
    return Dropped("unsupported_content", "not implemented")
