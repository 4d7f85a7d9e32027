"""Cleaning: a raw page (HTML or a whole-page text dump) down to its article."""

from worker.steps.clean.page import clean

__all__ = ["clean"]
