"""Build bench/entities/gold.jsonl from bench/entities/annotations.txt.

Texts: the first ~1500 characters (cut at a paragraph boundary) of reference article bodies
(`articleBody`) of the extraction benchmark, plus the seed page's expected body. Entity offsets
come from the hand-written annotation list: every listed surface is located at its whole-word
occurrences (or the listed ones), longest surfaces first, never overlapping. Each document's
split (dev or test) is written in its `## <index> <split>` header.

Usage:
  python bench/entities/build_gold.py /work/shared/bench/extraction/dev/ground-truth.json \
      tests/fixtures/seed-page.expected-body.txt > bench/entities/gold.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_CHARS = 1500


def excerpt(body: str, limit: int = MAX_CHARS) -> str:
    """The first paragraphs of a body, at most `limit` characters (at least one paragraph)."""
    kept = ""
    for paragraph in body.split("\n"):
        candidate = kept + ("\n" if kept else "") + paragraph
        if len(candidate) > limit and kept:
            break
        kept = candidate
    return kept


Items = list[tuple[str, str, set[int] | None]]


def parse(path: Path) -> dict[str, tuple[str, Items]]:
    """Document key -> (split, [(surface, label, occurrences or None)])."""
    docs: dict[str, tuple[str, Items]] = {}
    current = None
    for line in path.read_text("utf-8").splitlines():
        if line.startswith("## "):
            current, split = line[3:].split()
            docs[current] = (split, [])
        elif line.strip() and not line.startswith("#") and current is not None:
            parts = line.split("\t")
            wanted = {int(x) for x in parts[2].split(",")} if len(parts) > 2 else None
            docs[current][1].append((parts[0], parts[1], wanted))
    return docs


def occurrences(text: str, surface: str) -> list[tuple[int, int]]:
    """Whole-word (not glued to letters/digits) occurrences of a surface."""
    pattern = re.compile(rf"(?<![^\W_]){re.escape(surface)}(?![^\W_])")
    return [m.span() for m in pattern.finditer(text)]


def annotate(text: str, items: Items) -> list[dict]:
    """Entity spans of a text from its annotation items."""
    taken: list[tuple[int, int, str]] = []
    for surface, label, wanted in sorted(items, key=lambda item: -len(item[0])):
        found = occurrences(text, surface)
        if not found:
            raise SystemExit(f"not found: {surface!r}")
        for index, (start, end) in enumerate(found, 1):
            if wanted is not None and index not in wanted:
                continue
            if any(s < end and start < e for s, e, _ in taken):
                continue
            taken.append((start, end, label))
    return [{"start": s, "end": e, "label": label} for s, e, label in sorted(taken)]


def main(argv: list[str]) -> int:
    """Write the gold set as JSONL on stdout."""
    truth = json.loads(Path(argv[0]).read_text("utf-8"))
    keys = list(truth)
    seed_text = Path(argv[1]).read_text("utf-8")
    docs = parse(HERE / "annotations.txt")
    for name, (split, items) in docs.items():
        if name == "seed":
            doc_id, url, text = "seed-page", None, seed_text
        else:
            key = keys[int(name)]
            doc_id, url = key[:16], truth[key]["url"]
            text = excerpt(truth[key]["articleBody"])
        record = {"doc_id": doc_id, "split": split, "url": url, "text": text,
                  "entities": annotate(text, items)}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
