"""The files the commands read and write, checked before the work starts.

A path that cannot be used (missing, a directory, not gzip although named `.gz`, cut short, an
output directory that does not exist, JSONL that is not JSONL, a binary file sent as a page)
raises `UsageError` with one sentence naming the file and the fix. Gzip is recognised by its
magic bytes, whatever the name. An output file appears only when the command succeeds: it is
written beside its final name and renamed at the end, so a failed run leaves no empty file.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import IO

from worker.cli.failures import UsageError, describe_os_error

GZIP_MAGIC = b"\x1f\x8b"
# What a file that is no web page starts with: the commonest binaries sent by mistake.
BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a document in one: docx, xlsx, epub, jar)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
SNIFF_BYTES = 8192
WRAP_HINT = "jq -cRs '{url: \"https://example.com/page\", html: .}' page.html | ingest-worker process"


def readable(name: str, flag: str = "") -> Path:
    """The path of an input file that exists, is a file and can be read; else `UsageError`."""
    path = Path(name)
    what = f"{flag} {name}" if flag else name
    try:
        if path.is_dir():
            raise UsageError(f"{what} is a directory; give a file")
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(describe_os_error(exc) or f"{what}: {exc}") from exc
    return path


def writable(name: str, flag: str) -> Path:
    """The path of an output file whose directory exists, checked before any work is done."""
    path = Path(name)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{flag} {name} is a directory; give a file name")
    if not parent.is_dir():
        problem = "is a file, not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{flag} {name}: the directory {parent} {problem}; create it first or choose another path")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {name}: permission denied; choose a path you can write to")
    return path


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (its name does not matter)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_input(name: str) -> IO[bytes]:
    """An input file for reading, gunzipped when it is gzip; `-` is stdin."""
    if name == "-":
        return sys.stdin.buffer
    path = readable(name)
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads like any binary file
    if name.endswith(".gz"):
        raise UsageError(
            f"{name} is not gzip-compressed although its name ends in .gz; rename it without .gz, "
            "or compress it with gzip"
        )
    return open(path, "rb")


def lines_of(handle: IO[bytes], name: str) -> Iterator[bytes]:
    """The file's lines; a gzip stream that is cut short or corrupt raises `UsageError`."""
    count = 0
    try:
        for line in handle:
            count += 1
            yield line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UsageError(
            f"{name} is cut short or corrupt after {count} lines ({exc}); copy it again "
            f"(gzip -t {name} tests a copy)"
        ) from exc


def read_bytes(name: str, flag: str = "") -> bytes:
    """A whole file, gunzipped when it is gzip; a file that cannot be used raises `UsageError`."""
    path = readable(name, flag)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise UsageError(
                f"{name} is cut short or corrupt ({exc}); copy it again (gzip -t {name} tests a copy)"
            ) from exc
    if name.endswith(".gz"):
        raise UsageError(
            f"{name} is not gzip-compressed although its name ends in .gz; rename it without .gz, "
            "or compress it with gzip"
        )
    return data


@contextmanager
def output(name: str, flag: str = "-o") -> Iterator[IO[bytes]]:
    """A file to write (`-` = stdout) that takes its name only when the block succeeds."""
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = writable(name, flag)
    if path.exists() and not path.is_file():  # /dev/null, a pipe: write in place
        with open(path, "wb") as handle:
            yield handle
        return
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def binary_kind(data: bytes) -> str | None:
    """What a file is when it is no text (a PNG image, an ELF executable, binary data), else None."""
    for signature, kind in BINARY_SIGNATURES:
        if data.startswith(signature):
            return kind
    if b"\x00" in data[:SNIFF_BYTES]:
        return "binary data (it contains NUL bytes)"
    return None


def jsonl_problem(first_line: bytes) -> str | None:
    """Why a stream whose first non-blank line is `first_line` is no JSONL of objects, or None."""
    text = first_line.lstrip(b"\xef\xbb\xbf").strip()
    if text.startswith(b"{") and text != b"{":
        return None
    kind = binary_kind(first_line) or next(
        (kind for signature, kind in BINARY_SIGNATURES if first_line.startswith(signature[:4])), None
    )
    if kind:
        return f"it is {kind}"
    try:
        first_line.decode("utf-8")
    except UnicodeDecodeError:
        return "it is binary data (not UTF-8 text)"
    if text in (b"{", b"["):
        return "it looks like JSON spread over several lines; write one object a line (jq -c)"
    if text.startswith(b"["):
        return "it looks like a JSON array; write one object a line (jq -c '.[]')"
    shown = text[:40].decode("utf-8", "replace")
    looks = "HTML" if text.startswith(b"<") else "text"
    return f"it looks like {looks} (it starts with {shown!r}); wrap a page first: {WRAP_HINT}"


def require_jsonl(lines: Iterable[bytes], name: str) -> Iterator[bytes]:
    """`lines` unchanged, after checking the first non-blank one starts a JSON object."""
    iterator = iter(lines)
    seen: list[bytes] = []
    for line in iterator:
        seen.append(line)
        if line.strip():
            problem = jsonl_problem(line)
            if problem:
                shown = "stdin" if name == "-" else name
                raise UsageError(f"{shown} is not JSONL (one raw_page.v1 JSON object a line): {problem}")
            break
    return chain(seen, iterator)
