"""Cleaning: a raw page (HTML or a whole-page text dump) down to its article.

`clean` is imported on first use: the cleaning stack (lxml, trafilatura, the learned models and
what they load: LightGBM, scikit-learn, SciPy) takes seconds to import, and only the processes
that clean need it, not the worker's main process (whose start is part of a restart's time to
its first decision). Its modules import as usual (`worker.steps.clean.page_type`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.steps.clean.page import clean

__all__ = ["clean"]


def __getattr__(name: str) -> Any:
    if name == "clean":
        from worker.steps.clean.page import clean

        return clean
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
