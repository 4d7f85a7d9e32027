"""The sample pages shipped inside the package (`worker/samples/`), as raw Kafka messages."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson


@dataclass(frozen=True, slots=True)
class Sample:
    """One raw message and the outcome it should have (article, duplicate or dead_letter)."""

    name: str
    key: bytes | None
    value: bytes
    expect: str


def read_page(path: Path | str, url: str, fetched_at: str | None = None) -> bytes:
    """A `raw_page.v1` message for a `.html`, `.html.gz` or `.txt` file."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return wrap_page(data, url, as_text=path.name.removesuffix(".gz").endswith(".txt"), fetched_at=fetched_at)


def wrap_page(data: bytes, url: str, as_text: bool, fetched_at: str | None = None) -> bytes:
    """A `raw_page.v1` message for a page's bytes: its `text` (a text dump) or its `html`."""
    body = data.decode("utf-8", "replace")
    event: dict[str, str] = {"event_type": "raw_page.v1", "url": url, "text" if as_text else "html": body}
    if fetched_at:
        event["fetched_at"] = fetched_at
    return orjson.dumps(event)


def load_samples() -> list[Sample]:
    """Every sample of the manifest, in order."""
    folder = resources.files("worker") / "samples"
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    samples = []
    for item in manifest["samples"]:
        if "raw" in item:
            samples.append(Sample("malformed message", None, item["raw"].encode(), item["expect"]))
            continue
        with resources.as_file(folder / item["file"]) as path:
            value = read_page(path, item["url"], item.get("fetched_at"))
        samples.append(Sample(item["file"], item["url"].encode(), value, item["expect"]))
    return samples
