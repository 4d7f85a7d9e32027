"""Training data and training for the cleaners' learned models (HTML blocks, text-dump lines).

A candidate (a block of the page, a line of the dump) is labelled with the share of its 4-token
shingles found in the page's true body; it is a story candidate when that share is at least
one half. Each page weighs the same in training, as in the metric: a candidate's weight is its
share of the page's tokens.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from worker.evaluation.extraction_metric import WORD, shingle_counts
from worker.steps.clean.blocks import FEATURES, PageBlocks
from worker.steps.clean.context import STORY_PAGE_CUT, context_rows, story_page_row
from worker.steps.clean.trees import BlockModel, expected_f1_keep
from worker.steps.common import host

STORY_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class LabelledPage:
    """One page's candidate feature rows, story labels (0/1) and sample weights."""

    rows: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


def story_shares(texts: Sequence[str], truth: str) -> np.ndarray:
    """Share of each text's shingles (of a 1-3 token text: its tokens, in order) in `truth`."""
    true_shingles = shingle_counts(truth)
    joined = f" {' '.join(WORD.findall(truth))} "
    shares = np.zeros(len(texts))
    for k, text in enumerate(texts):
        tokens = WORD.findall(text)
        if not tokens:
            continue
        if len(tokens) < 4:
            shares[k] = float(f" {' '.join(tokens)} " in joined)
            continue
        own = shingle_counts(text)
        shares[k] = sum(min(n, true_shingles[s]) for s, n in own.items()) / sum(own.values())
    return shares


def labelled_page(texts: Sequence[str], rows: np.ndarray, truth: str) -> LabelledPage:
    """Labels and weights of one page's candidates."""
    tokens = np.array([len(WORD.findall(t)) for t in texts], dtype=float) + 1.0
    return LabelledPage(
        rows=rows,
        labels=(story_shares(texts, truth) >= STORY_SHARE).astype(float),
        weights=tokens / (tokens.sum() - len(tokens) + 1.0) if len(tokens) else tokens,
    )


def site_of(url: str) -> str:
    """The registrable part of a url's host ('news.bbc.co.uk' -> 'bbc.co.uk'): pages of one
    site share a template, so they share a fold."""
    labels = host(url).split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


_SECOND_LEVEL = frozenset("co com org net ac gov edu ne or go".split())


def fold_of(ids: Iterable[str], folds: int, urls: Mapping[str, str] | None = None) -> dict[str, int]:
    """Fold number of each page id. With `urls`, the pages of one site (`site_of`) share a
    fold: sites, largest first (ties in a fixed hashed order), each go to the fold with the
    fewest pages so far. Without, ids in sorted order are dealt round-robin."""
    ordered = sorted(ids)
    if urls is None:
        return {page_id: k % folds for k, page_id in enumerate(ordered)}
    sites: dict[str, list[str]] = {}
    for page_id in ordered:
        sites.setdefault(site_of(urls.get(page_id, "")) or page_id, []).append(page_id)
    sizes = [0] * folds
    assignment = {}
    for site in sorted(sites, key=lambda s: (-len(sites[s]), hashlib.sha1(s.encode()).hexdigest())):
        k = sizes.index(min(sizes))
        sizes[k] += len(sites[site])
        assignment.update(dict.fromkeys(sites[site], k))
    return assignment


# --- the HTML cleaner's trees: choices made inside the training pages ---------------------

# A labelled page with its story taken out (`extraction.without_story`; id: the page's id with
# this suffix, true body empty): a page of the same site with nothing to keep, as a news crawler
# also fetches (index, tag and error pages). Every labelled page has a story, and context trees
# learned from those keep a page's best blocks however weak they are. The story-page trees
# (`fit_story_pages`) learn from both which pages hold a story; the first and context trees
# learn from labelled pages only, and choices are scored on them only.
NO_STORY = "/no-story"


def made_from(page_id: str) -> str:
    """The labelled page a story-less page was made from (the page itself for a labelled one)."""
    return page_id.removesuffix(NO_STORY)


def page_folds(ids: Iterable[str], folds: int, urls: Mapping[str, str]) -> dict[str, int]:
    """Site-grouped folds (`fold_of`) of the labelled pages; a story-less page made from one
    joins its fold (it is the same site's template)."""
    ids = list(ids)
    assignment = fold_of([i for i in ids if made_from(i) == i], folds, urls)
    return {i: assignment[made_from(i)] for i in ids}


@dataclass(frozen=True, slots=True)
class BlockPage:
    """One labelled page for the block model: its blocks' texts, feature rows (`FEATURES`),
    ancestor numbers (`PageBlocks.ancestors`), labels and weights, and its true body."""

    texts: list[str]
    rows: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    truth: str
    ancestors: np.ndarray
    table_rows: tuple[int, ...] = ()

    @property
    def blocks(self) -> PageBlocks:
        """The page's blocks as the cleaner sees them."""
        return PageBlocks(self.texts, self.rows, self.ancestors, self.table_rows)


@dataclass(frozen=True, slots=True)
class TreeChoice:
    """What inner folds choose: tree size and count, the context trees' count (0: none), the
    keep rule (a threshold, or with context trees the expected-F1 rule at a power) and whether
    the boilerplate paragraph filter runs after the model."""

    leaves: int
    trees: int
    context_trees: int
    threshold: float
    filter_after: bool
    plain_threshold: float  # a page without a story: the first trees' probabilities, kept at this
    power: float | None = None  # with context trees: `expected_f1_keep` at this power, not the threshold


LEAVES = (31,)
TREES = (150, 300)
CONTEXT_TREES = (0, 50, 100)
STORY_PAGE_TREES = 100
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
POWERS = (1.0, 1.5, 2.0)
FILTERS = (False, True)
INNER_FOLDS = 3


def block_page(blocks: PageBlocks, truth: str) -> BlockPage:
    """Labels and weights of one page's blocks (as `labelled_page`; a repeated text's copies
    as `repeat_labels`)."""
    page = labelled_page(blocks.texts, blocks.features, truth)
    return BlockPage(list(blocks.texts), blocks.features, repeat_labels(blocks.texts, page.labels, truth),
                     page.weights, truth, blocks.ancestors, blocks.table_rows)


def repeat_labels(texts: Sequence[str], labels: np.ndarray, truth: str) -> np.ndarray:
    """`labels` with the later copies of a text the page repeats labelled story only while the
    true body holds that many copies of it: the metric counts words, so a second copy of a
    paragraph (a hidden duplicate, a block shown twice for two screen sizes) is words the
    reference does not hold, though each copy alone matches it."""
    copies = Counter(texts)
    if all(n == 1 for n in copies.values()):
        return labels
    joined = f" {' '.join(WORD.findall(truth))} "
    in_truth: dict[str, int] = {}
    seen: Counter[str] = Counter()
    out = labels.copy()
    for k, text in enumerate(texts):
        if copies[text] == 1:
            continue
        seen[text] += 1
        if seen[text] == 1:
            continue
        if text not in in_truth:
            tokens = WORD.findall(text)
            in_truth[text] = joined.count(f" {' '.join(tokens)} ") if tokens else 0
        if seen[text] > max(1, in_truth[text]):
            out[k] = 0.0
    return out


def _fit(rows: Sequence[np.ndarray], pages: Sequence[BlockPage], trees: int, **settings: Any) -> Any:
    import lightgbm

    labels = np.concatenate([p.labels for p in pages])
    weights = np.concatenate([p.weights for p in pages])
    params = {
        "objective": "binary", "bagging_fraction": 0.5, "bagging_freq": 1, "lambda_l2": 1.0,
        "verbose": -1, "num_threads": 1, "seed": 1, "deterministic": True, "force_row_wise": True, "max_bin": 63,
        **settings,
    }
    return lightgbm.train(params, lightgbm.Dataset(np.vstack(rows), labels, weight=weights / weights.mean()),
                          num_boost_round=trees)


def fit_trees(pages: Sequence[BlockPage], leaves: int, trees: int) -> Any:
    """LightGBM trees over the blocks of `pages` (each page weighs the same)."""
    chosen = [p for p in pages if len(p.rows)]
    return _fit([p.rows for p in chosen], chosen, trees, num_leaves=leaves, learning_rate=0.1,
                min_child_samples=40, feature_fraction=0.5)


def fit_context(pages: Sequence[BlockPage], first: Sequence[np.ndarray], trees: int) -> Any:
    """The context trees over the blocks of `pages`, each block's context read from the first
    trees' probabilities `first` (one array a page, held out: from trees that did not see it)."""
    chosen = [(p, f) for p, f in zip(pages, first, strict=True) if len(p.rows)]
    rows = [context_rows(p.blocks, f) for p, f in chosen]
    return _fit(rows, [p for p, _ in chosen], trees, num_leaves=7, learning_rate=0.05, min_child_samples=200,
                feature_fraction=0.8)


def learned_nothing(booster: Any) -> bool:
    """Whether trees say nothing of their rows: LightGBM stops at a first tree without a split
    when no leaf can meet `min_child_samples` (the context trees' 200 blocks a leaf from one or
    two training pages), and every row then gets the same probability."""
    return booster.current_iteration() <= 1 and \
        all(tree["num_leaves"] <= 1 for tree in booster.dump_model()["tree_info"])


def fit_story_pages(pages: Sequence[BlockPage], story: Sequence[bool], first: Sequence[np.ndarray]) -> Any:
    """The story-page trees: whether a page holds a story (`story`: a labelled page, or one with
    its story taken out), from its row of `STORY_PAGE_FEATURES` (the first trees' held-out
    probabilities `first` and the page's features); each page weighs the same."""
    import lightgbm

    chosen = [(p, s, f) for p, s, f in zip(pages, story, first, strict=True) if len(p.rows)]
    if len({s for _, s, _ in chosen}) < 2:
        return None  # nothing to tell apart: every page is taken to hold a story
    rows = np.vstack([story_page_row(p.blocks, f, context_rows(p.blocks, f)) for p, _, f in chosen])
    labels = np.array([float(s) for _, s, _ in chosen])
    params = {
        "objective": "binary", "num_leaves": 7, "learning_rate": 0.05, "min_child_samples": 20,
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
        "num_threads": 1, "seed": 1, "deterministic": True, "force_row_wise": True, "max_bin": 63,
    }
    return lightgbm.train(params, lightgbm.Dataset(rows, labels), num_boost_round=STORY_PAGE_TREES)


def kept_text(page: BlockPage, probabilities: np.ndarray, threshold: float, filter_after: bool,
              power: float | None = None) -> str:
    """The text the cleaner gives for `page` when it keeps the blocks at `threshold` or above,
    or with a `power` those of the highest expected word F1 (`expected_f1_keep`)."""
    from worker.steps.clean.html import drop_junk, filter_paragraphs, join_row_cells

    keep = probabilities >= threshold if power is None else \
        expected_f1_keep(probabilities, np.expm1(page.rows[:, FEATURES.index("log_words")]), power)
    # the same lines the cleaner gives (`html.select_paragraphs`): a table row's kept cells are one
    kept = join_row_cells(page.blocks, [k for k, chosen in enumerate(keep) if chosen])
    return "\n".join(filter_paragraphs(kept) if filter_after else drop_junk(kept))


def _word_f1(true_words: Counter[str], text: str) -> float:
    predicted = Counter(WORD.findall(text.lower()))
    if not true_words:
        return 0.0 if predicted else 1.0
    overlap = sum((predicted & true_words).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(predicted.values()), overlap / sum(true_words.values())
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True, slots=True)
class InnerRun:
    """What the inner folds chose and its mean word F1, with the first trees' held-out
    probabilities of every page (by tree count), which the context trees are trained on."""

    choice: TreeChoice
    f1: float
    first: dict[int, dict[str, np.ndarray]]


def held_out_first(pages: Mapping[str, BlockPage], assignment: Mapping[str, int],
                   leaves: int = LEAVES[0]) -> dict[int, dict[str, np.ndarray]]:
    """The first trees' probabilities of every page's blocks (story-less pages included), by
    tree count (`TREES`), each fold's pages scored by trees trained on the other folds'
    labelled pages."""
    first: dict[int, dict[str, np.ndarray]] = {trees: {} for trees in TREES}
    for k in sorted(set(assignment.values())):
        training = [p for i, p in pages.items() if assignment[i] != k and len(p.rows) and made_from(i) == i]
        if not training:
            continue
        booster = fit_trees(training, leaves, max(TREES))
        for i, page in pages.items():
            if assignment[i] == k:
                for trees in TREES:
                    first[trees][i] = booster.predict(page.rows, num_iteration=trees) if len(page.rows) \
                        else np.zeros(0)
    return first


def choose_from(pages: Mapping[str, BlockPage], assignment: Mapping[str, int],
                first: Mapping[int, Mapping[str, np.ndarray]], leaves: int = LEAVES[0],
                context_trees: Sequence[int] = CONTEXT_TREES) -> tuple[TreeChoice, float]:
    """The choice with the best mean word F1 of the held-out first-tree probabilities `first`,
    alone or rescored by context trees (each fold's by context trees trained on the other
    folds' held-out probabilities) and kept at a threshold or, with context trees, by the
    expected-F1 rule at one of `POWERS`, and that F1."""
    probabilities: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    story_less: dict[int, set[str]] = {trees: set() for trees in first}  # pages the story-page trees find none on
    blind: set[int] = set()  # first-tree counts whose context trees learned nothing in some inner fold
    for trees, found in first.items():
        probabilities[(trees, 0)] = dict(found)
        sizes = [r for r in context_trees if r]
        for k in sorted(set(assignment.values())):
            others = [i for i in found if assignment[i] != k and len(pages[i].rows)]
            if not others or not sizes:
                continue
            labelled = [i for i in others if made_from(i) == i]
            context = fit_context([pages[i] for i in labelled], [found[i] for i in labelled], max(sizes))
            if learned_nothing(context):
                blind.add(trees)
            story = fit_story_pages([pages[i] for i in others], [made_from(i) == i for i in others],
                                    [found[i] for i in others])
            for i in found:
                if assignment[i] != k:
                    continue
                page = pages[i]
                rows = context_rows(page.blocks, found[i]) if len(page.rows) else None
                # as `BlockModel.scores`: no context on a page without a story
                if rows is None or (story is not None and story.predict(
                        story_page_row(page.blocks, found[i], rows))[0] < STORY_PAGE_CUT):
                    story_less[trees].add(i)
                for r in sizes:
                    cell = probabilities.setdefault((trees, r), {})
                    cell[i] = found[i] if i in story_less[trees] else context.predict(rows, num_iteration=r)
    truths = {i: Counter(WORD.findall(page.truth.lower())) for i, page in pages.items()}
    scored = [i for i in pages if made_from(i) == i]

    def page_f1(used: Mapping[str, np.ndarray], threshold: float, filter_after: bool,
                power: float | None = None) -> dict[str, float]:
        return {i: _word_f1(truths[i], kept_text(pages[i], used[i], threshold, filter_after, power))
                for i in scored if i in used}

    # the first trees alone, and the threshold they keep at (a page without a story keeps it)
    plain: dict[tuple[int, bool], tuple[float, dict[str, float], float]] = {}
    best: tuple[TreeChoice, float] | None = None
    for trees in first:
        for filter_after in FILTERS:
            for threshold in THRESHOLDS:
                f1s = page_f1(probabilities[(trees, 0)], threshold, filter_after)
                f1 = float(np.mean(list(f1s.values()))) if f1s else 0.0
                if (trees, filter_after) not in plain or f1 > plain[(trees, filter_after)][2]:
                    plain[(trees, filter_after)] = (threshold, f1s, f1)
                if 0 in context_trees and (best is None or f1 > best[1]):
                    best = (TreeChoice(leaves, trees, 0, threshold, filter_after, threshold), f1)
    for (trees, rounds), used in probabilities.items():
        if not rounds or trees in blind:
            continue  # a rule over one probability for every block would choose between all and nothing
        for filter_after in FILTERS:
            plain_threshold, plain_f1s, _ = plain[(trees, filter_after)]
            with_story = {i: p for i, p in used.items() if i not in story_less[trees]}
            rules = [(threshold, None) for threshold in THRESHOLDS] + [(plain_threshold, power) for power in POWERS]
            for threshold, power in rules:
                f1s = page_f1(with_story, threshold, filter_after, power)
                f1s |= {i: f for i, f in plain_f1s.items() if i in story_less[trees]}
                f1 = float(np.mean(list(f1s.values()))) if f1s else 0.0
                if best is None or f1 > best[1]:
                    best = (TreeChoice(leaves, trees, rounds, threshold, filter_after, plain_threshold, power), f1)
    return best or (TreeChoice(leaves, TREES[0], 0, 0.5, True, 0.5), 0.0)


def choose_trees(pages: Mapping[str, BlockPage], urls: Mapping[str, str],
                 folds: int = INNER_FOLDS) -> InnerRun:
    """The choice with the best mean word F1 over `folds` site-grouped folds of `pages` (each
    fold scored by trees trained on the others; the context trees trained on the others'
    held-out first-tree probabilities)."""
    assignment = page_folds(pages, folds, urls)
    first = held_out_first(pages, assignment)
    choice, f1 = choose_from(pages, assignment, first)
    return InnerRun(choice, f1, first)


def train_block_model(pages: Mapping[str, BlockPage], urls: Mapping[str, str]) -> BlockModel:
    """Choose inside `pages` (`choose_trees`), then train on all of them: the first trees on
    the pages' blocks, the context trees (when chosen) on the first trees' held-out
    probabilities of the inner folds."""
    inner = choose_trees(pages, urls)
    choice = inner.choice
    booster = fit_trees([p for i, p in pages.items() if made_from(i) == i], choice.leaves, choice.trees)
    context = story = None
    if choice.context_trees:
        held_out = inner.first[choice.trees]
        ids = [i for i in pages if i in held_out and made_from(i) == i]
        context = fit_context([pages[i] for i in ids], [held_out[i] for i in ids], choice.context_trees)
        if learned_nothing(context):  # as in the inner folds: no context trees, the first trees' threshold
            context = None
            choice = replace(choice, context_trees=0, threshold=choice.plain_threshold, power=None)
        else:
            every = [i for i in pages if i in held_out]
            story = fit_story_pages([pages[i] for i in every], [made_from(i) == i for i in every],
                                    [held_out[i] for i in every])
    labelled = sum(1 for i in pages if made_from(i) == i)
    return BlockModel(booster, FEATURES, choice.threshold, choice.filter_after,
                      {**asdict(choice), "inner_f1": round(inner.f1, 4), "pages": labelled,
                       "story_less_pages": len(pages) - labelled}, context, story, choice.plain_threshold,
                      choice.power if context is not None else None)


def block_fold_models(pages: Mapping[str, BlockPage], urls: Mapping[str, str],
                      folds: int) -> dict[str, BlockModel]:
    """For each page id, the block model trained (choices included) on every outer fold but
    the page's own."""
    assignment = page_folds(pages, folds, urls)
    models = [train_block_model({i: p for i, p in pages.items() if assignment[i] != k}, urls)
              for k in range(folds)]
    return {page_id: models[k] for page_id, k in assignment.items() if made_from(page_id) == page_id}
