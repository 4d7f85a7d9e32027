#!/usr/bin/env python3
"""Make a harder syndication set from a labelled one, to check the dedup step on unseen edits.

    python bench/dedup_harder.py --pages pages.jsonl.gz --truth truth.json --out DIR [--seed 1]
    ingest-worker eval dedup --pages DIR/pages.jsonl.gz --truth DIR/truth.json

Keeps every input page and adds, for one page of each story, `--copies` new copies placed inside
another site's whole-page text dump (that host's menus, related links and footers kept, its own
story swapped out, so the host's own page is a hard negative), with harsher edits than usual:
only 30-70% of the story kept, 5-15% of the words replaced or garbled, quotes and dashes changed,
paragraphs merged and split, a new headline, an update note and "Read more" lines inserted.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.document import Article, RawPage  # noqa: E402
from worker.evaluation.dedup import read_lines  # noqa: E402
from worker.steps.clean.page import clean  # noqa: E402


def host(url: str) -> str:
    return (urlsplit(url).hostname or "").removeprefix("www.")


def story_text(page: dict) -> str | None:
    cleaned = clean(RawPage(url=page["url"], html=page.get("html"), text=page.get("text")))
    return cleaned.text if isinstance(cleaned, Article) else None


def typical(members: list[dict], texts: dict[str, str | None]) -> dict:
    """The member whose cleaned text shares most with the others (not a page the cleaner got
    wrong), the longest one on a tie."""
    shingles = {}
    for page in members:
        words = (texts[page["url"]] or "").split()
        shingles[page["url"]] = {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}

    def score(page: dict) -> tuple[float, int]:
        own = shingles[page["url"]]
        shared = sum(len(own & shingles[o["url"]]) / (len(own) or 1) for o in members if o is not page)
        return shared, len(own)

    return max(members, key=score)


def mutate(paragraphs: list[str], vocab: list[str], rng: random.Random) -> list[str]:
    """Cut, garble, requote, merge/split and pad a story the way a careless republisher does."""
    total = sum(len(p.split()) for p in paragraphs)
    keep, kept, words = rng.uniform(0.3, 0.7) * total, [], 0
    for paragraph in paragraphs:
        if words >= keep:
            break
        kept.append(paragraph)
        words += len(paragraph.split())
    change = rng.uniform(0.05, 0.15)
    edited = []
    for paragraph in kept:
        tokens = paragraph.split()
        for i, token in enumerate(tokens):
            roll = rng.random()
            if roll < change / 2:
                tokens[i] = rng.choice(vocab)
            elif roll < change:
                tokens[i] = token[::-1]
        text = " ".join(tokens).replace('"', "\u201c").replace("'", "\u2019").replace(" - ", " \u2014 ")
        edited.append(text)
    merged: list[str] = []
    for paragraph in edited:
        if merged and rng.random() < 0.3:
            merged[-1] += " " + paragraph
        else:
            merged.append(paragraph)
    out: list[str] = []
    for paragraph in merged:
        tokens = paragraph.split()
        if len(tokens) > 60 and rng.random() < 0.3:
            out += [" ".join(tokens[: len(tokens) // 2]), " ".join(tokens[len(tokens) // 2 :])]
        else:
            out.append(paragraph)
    for _ in range(rng.randint(1, 3)):
        link = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 12)))
        out.insert(rng.randrange(len(out) + 1), f"Read more: {link}")
    headline = " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 12))).title()
    note = "Update: this story has been updated with additional reporting."
    return [headline, *out, note]


def swap_story(dump: str, host_story: str, new_story: list[str]) -> str | None:
    """The host's text dump with the lines of its own story replaced by `new_story`."""
    story_lines = {line.strip() for line in host_story.splitlines() if len(line.split()) >= 5}
    lines = dump.splitlines()
    hits = [i for i, line in enumerate(lines) if line.strip() in story_lines]
    if len(hits) < 2 or len({lines[i].strip() for i in hits}) < 0.9 * len(story_lines):
        return None  # the host's story is not cleanly found in its dump: it would stay in
    first, last = hits[0], hits[-1]
    return "\n".join(lines[:first] + ["\n\n".join(new_story)] + lines[last + 1 :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--copies", type=int, default=2, help="new copies per story")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pages = [json.loads(line) for line in read_lines(args.pages) if line.strip()]
    truth: dict[str, str] = json.loads(b"\n".join(read_lines(args.truth)))
    texts = {p["url"]: story_text(p) for p in pages}
    by_story: dict[str, list[dict]] = defaultdict(list)
    for page in pages:
        if texts[page["url"]]:
            by_story[truth[page["url"]]].append(page)
    vocab = [w for t in texts.values() if t for w in t.split()]
    # Hosts: text dumps of stories seen once (a page that is itself a copy would keep its story).
    sizes = defaultdict(int)
    for page in pages:
        sizes[truth[page["url"]]] += 1
    hosts = [p for p in pages if p.get("text") and texts[p["url"]] and sizes[truth[p["url"]]] == 1]
    made: list[dict] = []
    for story, members in sorted(by_story.items()):
        source = typical(members, texts)
        paragraphs = [p for p in (texts[source["url"]] or "").split("\n\n") if p.strip()]
        for n in range(args.copies):
            dump = None
            for _ in range(50):
                hp = rng.choice(hosts)
                if truth[hp["url"]] == story or host(hp["url"]) in {host(m["url"]) for m in members}:
                    continue
                dump = swap_story(hp["text"], texts[hp["url"]] or "", mutate(paragraphs, vocab, rng))
                if dump is not None:
                    break
            if dump is None:
                continue
            digest = hashlib.sha256(f"{story}{n}{hp['url']}".encode()).hexdigest()[:12]
            url = f"https://{urlsplit(hp['url']).hostname}/republished/{digest}"
            made.append({"url": url, "fetched_at": source.get("fetched_at"), "text": dump})
            truth[url] = story
    stream = pages + made
    rng.shuffle(stream)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "pages.jsonl.gz", "wt", encoding="utf-8") as f:
        for page in stream:
            f.write(json.dumps(page, ensure_ascii=False) + "\n")
    (out / "truth.json").write_text(json.dumps(truth, indent=0))
    print(f"{len(pages)} pages kept, {len(made)} harder copies added -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
