"""ingest-worker: raw news pages in, clean, deduplicated, entity-tagged article events out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ingest-worker")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"
