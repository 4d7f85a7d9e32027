#!/usr/bin/env python3
"""Make a harder syndication set from a labelled one, to check the dedup step on unseen edits.

    python bench/dedup_harder.py --pages pages.jsonl.gz --truth truth.json --out DIR [--seed 1]
                                 [--fold I/N] [--copies 6] [--kinds cut,lead,...]
                                 [--keep-host 0.3] [--reuse-host 0.3]
    ingest-worker eval dedup --pages DIR/pages.jsonl.gz --truth DIR/truth.json --groups DIR/kinds.json

Keeps every input page and adds, for one page of each story, `--copies` new copies placed inside
another site's whole-page text dump (that host's menus, related links and footers kept, its own
story swapped out, so the host's own page is a hard negative). Each copy carries one edit kind
(`EDIT_KINDS`, used in turn): a cut and garbled story, a rewritten lead, inserted paragraphs,
reordered paragraphs, truncation to 60%, or all of those at once. `kinds.json` says which copy
got which kind (`input` for the pages given), so `eval dedup --groups` prints the recall and
precision of each kind beside the overall figures. Seeded: the same arguments give the same set.

Harder negatives: `--keep-host SHARE` of the copies keep, above the syndicated body, what a
template carries of its own page's story: its title and key points (its first long lines) and
the headlines of its other stories (its other long lines, as related links); the host's own
page then shares those with the copy, and another site's copy of the host's story does too.
`--reuse-host SHARE` of the copies go to a host that already took another story's copy, so one
site's template is published with different bodies in the same window.

`--fold I/N` copies only the stories of fold I (a hash of the story id): choose thresholds on one
fold and report on the other, so no figure comes from the pages a rule was chosen on.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
import zlib
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.document import Article, RawPage  # noqa: E402
from worker.evaluation.dedup import read_lines  # noqa: E402
from worker.steps.clean.page import clean  # noqa: E402


def host(url: str) -> str:
    return (urlsplit(url).hostname or "").removeprefix("www.")


def cleaned(page: dict) -> Article | None:
    """The page's article as the worker's cleaner reads it (None when it finds none)."""
    article = clean(RawPage(url=page["url"], html=page.get("html"), text=page.get("text")))
    return article if isinstance(article, Article) else None


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


EDIT_KINDS = ("cut", "lead", "insert", "reorder", "truncate", "mixed")
"""One edit kind per copy, round robin, so every kind gets as many copies and its own recall:

- cut: 30-70% of the story kept, 5-15% of the words replaced or reversed, paragraphs merged/split;
- lead: the first paragraph or two paraphrased (sentences reordered, most words swapped) or
  replaced by a new lead;
- insert: 1-4 paragraphs added among the story's (an editor's note, a paragraph of local context,
  promo lines);
- reorder: paragraphs moved around;
- truncate: the first 60% of the story's words, cut mid-paragraph;
- mixed: all of lead, insert, reorder and truncate at once, with 2-6% of the words changed.

Every copy also gets a new headline, curly quotes and em dashes, and 0-2 "Read more" lines."""

EDITOR_NOTES = (
    "Editor's note: This article was originally published by {site} and is republished here "
    "under a content-sharing agreement.",
    "This story was produced by {site} and is shared with our readers through a partnership "
    "with local newsrooms.",
    "Editor's note: an earlier version of this story misstated a date; it has been corrected.",
)
PROMOS = (
    "Sign up for our free morning newsletter to get the day's top stories delivered to your inbox.",
    "Support independent local journalism: become a member today for less than a dollar a week.",
    "Download our app for breaking news alerts, live coverage and the stories that matter to you.",
)


def garble(paragraphs: list[str], share: float, vocab: list[str], rng: random.Random) -> list[str]:
    """Replace or reverse about `share` of the words."""
    out = []
    for paragraph in paragraphs:
        tokens = paragraph.split()
        for i, token in enumerate(tokens):
            roll = rng.random()
            if roll < share / 2:
                tokens[i] = rng.choice(vocab)
            elif roll < share:
                tokens[i] = token[::-1]
        out.append(" ".join(tokens))
    return out


def first_words(paragraphs: list[str], share: float) -> list[str]:
    """The story cut after `share` of its words (mid-paragraph)."""
    budget = max(1, round(share * sum(len(p.split()) for p in paragraphs)))
    out = []
    for paragraph in paragraphs:
        tokens = paragraph.split()
        if budget <= 0:
            break
        out.append(" ".join(tokens[:budget]))
        budget -= len(tokens)
    return out


def cut(paragraphs: list[str], vocab: list[str], rng: random.Random) -> list[str]:
    """30-70% kept (whole paragraphs), 5-15% of the words changed, paragraphs merged and split."""
    total = sum(len(p.split()) for p in paragraphs)
    keep, kept, words = rng.uniform(0.3, 0.7) * total, [], 0
    for paragraph in paragraphs:
        if words >= keep:
            break
        kept.append(paragraph)
        words += len(paragraph.split())
    edited = garble(kept, rng.uniform(0.05, 0.15), vocab, rng)
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
    return out


def paraphrase(paragraph: str, vocab: list[str], rng: random.Random) -> str:
    """Sentences in another order, clauses rotated, about 40% of the words swapped or dropped."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", paragraph) if s]
    rng.shuffle(sentences)
    out = []
    for sentence in sentences:
        clauses = sentence.rstrip(".!?").split(", ")
        if len(clauses) > 1:
            turn = rng.randrange(1, len(clauses))
            clauses = clauses[turn:] + clauses[:turn]
        words = []
        for word in ", ".join(clauses).split():
            roll = rng.random()
            if roll < 0.3:
                words.append(rng.choice(vocab))
            elif roll >= 0.4:
                words.append(word)
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def rewrite_lead(paragraphs: list[str], vocab: list[str], rng: random.Random) -> list[str]:
    """The first paragraph or two (at least ~40 words) paraphrased, or replaced by a new lead."""
    lead, words = 0, 0
    while lead < len(paragraphs) - 1 and (lead < 1 or (words < 40 and lead < 2)):
        words += len(paragraphs[lead].split())
        lead += 1
    if rng.random() < 0.5:
        new = [paraphrase(p, vocab, rng) for p in paragraphs[:lead]]
    else:
        new = [" ".join(rng.choice(vocab) for _ in range(len(p.split()))).capitalize() + "." for p in paragraphs[:lead]]
    return new + paragraphs[lead:]


def insert_paragraphs(
    paragraphs: list[str], site: str, vocab: list[str], others: list[str], rng: random.Random
) -> list[str]:
    """An editor's note, a paragraph of local context (reworded sentences of another story) and
    0-2 promo lines, each at a random place."""
    out = list(paragraphs)
    added = [rng.choice(EDITOR_NOTES).format(site=site)]
    # Local context is the republisher's own writing: sentences on another subject, reworded (a
    # verbatim paragraph of another story in the stream would make the copy part of that story).
    context = [s for s in re.split(r"(?<=[.!?])\s+", rng.choice(others)) if len(s.split()) >= 6]
    if context:
        at = rng.randrange(len(context))
        added.append(paraphrase(" ".join(context[at : at + rng.randint(2, 3)]), vocab, rng))
    added += rng.sample(PROMOS, rng.randint(0, 2))
    for paragraph in added:
        out.insert(rng.randrange(len(out) + 1) if out else 0, paragraph)
    return out


def reorder(paragraphs: list[str], rng: random.Random) -> list[str]:
    """Paragraphs moved: a few taken out and put back elsewhere (never left in the same order)."""
    out = list(paragraphs)
    if len(out) < 2:
        return out
    for _ in range(max(1, len(out) // 3)):
        paragraph = out.pop(rng.randrange(len(out)))
        out.insert(rng.randrange(len(out) + 1), paragraph)
    if out == paragraphs:
        out[0], out[-1] = out[-1], out[0]
    return out


def mutate(
    kind: str, paragraphs: list[str], site: str, vocab: list[str], others: list[str], rng: random.Random
) -> list[str]:
    """One copy of the story with the edits of `kind`, dressed the way republishers dress copies."""
    if kind == "cut":
        story = cut(paragraphs, vocab, rng)
    elif kind == "lead":
        story = rewrite_lead(paragraphs, vocab, rng)
    elif kind == "insert":
        story = insert_paragraphs(paragraphs, site, vocab, others, rng)
    elif kind == "reorder":
        story = reorder(paragraphs, rng)
    elif kind == "truncate":
        story = first_words(paragraphs, 0.6)
    elif kind == "mixed":
        story = rewrite_lead(paragraphs, vocab, rng)
        story = garble(first_words(story, 0.6), rng.uniform(0.02, 0.06), vocab, rng)
        story = insert_paragraphs(reorder(story, rng), site, vocab, others, rng)
    else:
        raise ValueError(kind)
    story = [p.replace('"', "\u201c").replace("'", "\u2019").replace(" - ", " \u2014 ") for p in story]
    for _ in range(rng.randint(0, 2)):
        link = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 12)))
        story.insert(rng.randrange(len(story) + 1), f"Read more: {link}")
    headline = " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 12))).title()
    note = "Update: this story has been updated with additional reporting."
    return [headline, *story, note] if kind == "cut" or rng.random() < 0.3 else [headline, *story]


def swap_story(dump: str, host_story: str, new_story: list[str], kept: list[str] | None = None) -> str | None:
    """The host's text dump with the lines of its own story replaced by `new_story` (after
    `kept`: what the template keeps of the host's own page, see `host_leftovers`)."""
    story_lines = {line.strip() for line in host_story.splitlines() if len(line.split()) >= 5}
    lines = dump.splitlines()
    hits = [i for i, line in enumerate(lines) if line.strip() in story_lines]
    if len(hits) < 2 or len({lines[i].strip() for i in hits}) < 0.9 * len(story_lines):
        return None  # the host's story is not cleanly found in its dump: it would stay in
    first, last = hits[0], hits[-1]
    return "\n".join(lines[:first] + (kept or []) + ["\n\n".join(new_story)] + lines[last + 1 :])


def host_leftovers(host_title: str, host_story: str, others: list[str], rng: random.Random) -> list[str]:
    """What a template keeps of its own page around a syndicated body: the page's title, its
    story's key points (its first 2-3 long lines, as bullets) and 2-4 headlines of the site's
    other stories (first sentences of other stories, as related links)."""
    long_lines = [line.strip() for line in host_story.splitlines() if len(line.split()) >= 7]
    points = [f"\u2022 {line}" for line in long_lines[: rng.randint(2, 3)]]
    related = []
    for text in rng.sample(others, min(len(others), rng.randint(2, 4))):
        line = max(text.splitlines(), key=lambda line: len(line.split()))
        first = re.split(r"(?<=[.!?])\s+", line.strip(), maxsplit=1)[0]
        if len(first.split()) >= 5:
            related.append(f"Related: {first}")
    return [host_title, "Key points", *points, *related]


def in_fold(story: str, fold: str | None) -> bool:
    """Whether a story belongs to fold `I/N` (stable across runs: a hash of its id)."""
    if not fold:
        return True
    number, folds = (int(x) for x in fold.split("/"))
    return zlib.crc32(story.encode()) % folds == number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--copies", type=int, default=len(EDIT_KINDS), help="new copies per story")
    parser.add_argument("--kinds", default=",".join(EDIT_KINDS), help="edit kinds, used in turn")
    parser.add_argument("--fold", help="I/N: copy only the stories of fold I of N (tuning vs report)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-host", type=float, default=0.3, help="share of copies keeping host key points")
    parser.add_argument("--reuse-host", type=float, default=0.3, help="share of copies sent to a host already used")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(EDIT_KINDS)
    if unknown:
        parser.error(f"unknown edit kinds: {sorted(unknown)}")
    rng = random.Random(args.seed)
    pages = [json.loads(line) for line in read_lines(args.pages) if line.strip()]
    truth: dict[str, str] = json.loads(b"\n".join(read_lines(args.truth)))
    articles = {p["url"]: cleaned(p) for p in pages}
    texts = {url: article.text if article else None for url, article in articles.items()}
    by_story: dict[str, list[dict]] = defaultdict(list)
    for page in pages:
        if texts[page["url"]]:
            by_story[truth[page["url"]]].append(page)
    vocab = [w for t in texts.values() if t for w in t.split()]
    # Hosts: text dumps of stories seen once (a page that is itself a copy would keep its story).
    sizes: dict[str, int] = defaultdict(int)
    for page in pages:
        sizes[truth[page["url"]]] += 1
    hosts = [p for p in pages if p.get("text") and texts[p["url"]] and sizes[truth[p["url"]]] == 1]
    labels = dict.fromkeys(truth, "input")
    made: list[dict] = []
    used: list[dict] = []  # hosts that took a copy, for --reuse-host
    titles = {url: article.title for url, article in articles.items() if article}
    turn = rng.randrange(len(kinds))
    for story, members in sorted(by_story.items()):
        if not in_fold(story, args.fold):
            continue
        source = typical(members, texts)
        paragraphs = [p for p in (texts[source["url"]] or "").split("\n\n") if p.strip()]
        others = [t for u, t in texts.items() if t and truth[u] != story]
        for n in range(args.copies):
            kind = kinds[turn % len(kinds)]
            turn += 1
            dump = None
            reuse = used and rng.random() < args.reuse_host
            keep = rng.random() < args.keep_host
            for _ in range(50):
                hp = rng.choice(used if reuse else hosts)
                if truth[hp["url"]] == story or host(hp["url"]) in {host(m["url"]) for m in members}:
                    continue
                copy = mutate(kind, paragraphs, host(source["url"]), vocab, others, rng)
                kept = host_leftovers(titles[hp["url"]], texts[hp["url"]] or "", others, rng) if keep else None
                dump = swap_story(hp["text"], texts[hp["url"]] or "", copy, kept)
                if dump is not None:
                    break
            if dump is None:
                continue
            used.append(hp)
            digest = hashlib.sha256(f"{story}{n}{hp['url']}".encode()).hexdigest()[:12]
            url = f"https://{urlsplit(hp['url']).hostname}/republished/{digest}"
            made.append({"url": url, "fetched_at": source.get("fetched_at"), "text": dump})
            truth[url] = story
            labels[url] = kind
    stream = pages + made
    rng.shuffle(stream)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "pages.jsonl.gz", "wt", encoding="utf-8") as f:
        for page in stream:
            f.write(json.dumps(page, ensure_ascii=False) + "\n")
    (out / "truth.json").write_text(json.dumps(truth, indent=0))
    (out / "kinds.json").write_text(json.dumps(labels, indent=0))
    counts = ", ".join(f"{k} {sum(v == k for v in labels.values())}" for k in kinds)
    print(f"{len(pages)} pages kept, {len(made)} harder copies added ({counts}) -> {out}")
    print(
        f"score: ingest-worker eval dedup --pages {out}/pages.jsonl.gz --truth {out}/truth.json "
        f"--groups {out}/kinds.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
