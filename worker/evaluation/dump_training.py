"""Training of the text-dump line model (`clean.line_model`) and its held-out evaluation.

Each line of a labelled dump is a story line when at least half of its 4-token shingles are in
the page's true body (`clean_training.story_shares`); a line weighs its share of the page's
tokens, each page of a folder the same, and each folder the same (88 news pages count as much
as 1,497 pages of seven kinds, as in the selection's score). The booster's settings are fixed
below; the vocabulary (the words found on most training pages) and the selection rule with its
value are chosen inside the training pages: the rule by cross-validation over folds grouped by
site, scored with each folder's own metric (word F1 on pages with a page type, shingle F1
otherwise), each folder weighing the same; once over all pages, then again for each page kind
with at least `MIN_KIND_PAGES` training pages (their labelled kind), over that kind's pages.
The trees also read the scores of a linear line words model (`LineWordModel`: the words and
word pairs found on at least `GRAM_PAGES` training pages, logistic loss, fixed settings): the
scores the trees learn from are out of fold (`STACK_FOLDS` site-grouped folds of the training
pages, each scored by a words model fitted on the others), the shipped words model is fitted
on all of them.
`fold_line_models` trains one such model per held-out fold, with a page-type classifier on the
same folds (so the kind that picks a held-out page's rule comes from a model that never saw it
either): the figures of `ingest-worker eval extraction --mode text --folds K` are nested.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from worker.document import Article, RawPage
from worker.evaluation.clean_training import STORY_SHARE, fold_of, site_of, story_shares
from worker.evaluation.extraction_metric import WORD, aggregate, mean_words, page_counts, word_prf
from worker.steps.clean.dump import ROW_FEATURES, DumpLines, read_dump, story_paragraphs
from worker.steps.clean.line_model import (
    WORD_SCORE_FEATURES,
    LineModel,
    LineWordModel,
    Selection,
    line_matrix,
    word_score_columns,
)
from worker.steps.clean.model import CleanModels
from worker.steps.clean.normalize import join_paragraphs
from worker.steps.clean.page import clean
from worker.steps.clean.page_type import KINDS, PageTypeModel, text_features

VOCABULARY = 400  # words, most pages first
INNER_FOLDS = 2
SELECTIONS = tuple(
    Selection("run", value, share) for value in (0.25, 0.3, 0.4) for share in (1.0, 0.5, 0.25, 0.1)
)
MIN_KIND_PAGES = 30  # a page kind with fewer training pages takes the rule chosen over all pages
# The held-out evaluation's page-type classifier: fixed settings (`bench/train_page_type.py`
# chooses the shipped one's by its own nested folds).
PAGE_TYPE_SETTINGS: dict[str, object] = {"num_leaves": 15, "min_child_samples": 20, "balanced": False}
PAGE_TYPE_ROUNDS = 200
BOOSTER = {
    "objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 50,
    "feature_fraction": 0.8, "bagging_fraction": 0.5, "bagging_freq": 1, "max_bin": 63,
    "num_threads": 1, "seed": 7, "deterministic": True, "verbosity": -1,
}
ROUNDS = 150
GRAM_PAGES = 3  # a word or word pair enters the line words model when found on this many training pages
STACK_FOLDS = 3
LINE_WORDS_ALPHA = 1e-5  # L2 penalty of the line words model (SGD, logistic loss)
LINE_WORDS_EPOCHS = 15
FEATURES = ROW_FEATURES + WORD_SCORE_FEATURES


@dataclass(frozen=True, slots=True)
class DumpPage:
    """One labelled dump: its lines read as the cleaner reads them, labels and weights."""

    page_id: str
    url: str
    text: str  # the dump as given
    site: str
    dump: DumpLines
    labels: np.ndarray
    weights: np.ndarray
    truth: str
    word_metric: bool  # scored with word-bag F1 (a WCXB page), else shingle F1
    source: str = ""  # the labelled folder it comes from
    page_type: str | None = None  # its labelled kind


def dump_page(
    page_id: str, text: str, truth: str, url: str, word_metric: bool, source: str = "", page_type: str | None = None
) -> DumpPage:
    """Read and label one dump (`source`: its folder; `page_type`: its labelled kind)."""
    dump = read_dump(text, None, url)
    texts = [line.text for line in dump.lines]
    tokens = np.array([len(WORD.findall(t)) for t in texts], dtype=float) + 1.0
    weights = tokens / (tokens.sum() - len(tokens) + 1.0) if len(tokens) else tokens
    labels = (story_shares(texts, truth) >= STORY_SHARE).astype(float)
    return DumpPage(page_id, url, text, site_of(url), dump, labels, weights, truth, word_metric, source, page_type)


def vocabulary(pages: Iterable[DumpPage], size: int = VOCABULARY) -> list[str]:
    """The `size` words found on most pages (ties in alphabetical order)."""
    found: Counter[str] = Counter()
    for page in pages:
        found.update(set().union(*page.dump.words) if page.dump.words else set())
    return [word for word, _ in sorted(found.items(), key=lambda item: (-item[1], item[0]))[:size]]


def _line_weights(pages: Sequence[DumpPage]) -> np.ndarray:
    """Training weight of each line of `pages` (pages with lines): its share of its page's
    tokens, each folder weighing the same, mean 1."""
    per_source = Counter(p.source for p in pages)
    weights = np.concatenate([p.weights / per_source[p.source] for p in pages])
    return weights / weights.mean()


def fit_line_words(pages: Sequence[DumpPage]) -> LineWordModel:
    """The line words model of `pages`: logistic loss by SGD over the words and word pairs
    found on at least `GRAM_PAGES` of them (weights rounded to 4 decimals, as shipped)."""
    from sklearn.linear_model import SGDClassifier

    chosen = [p for p in pages if p.dump.lines]
    found: Counter[str] = Counter()
    for page in chosen:
        found.update(set().union(*page.dump.grams))
    grams = sorted(g for g, n in found.items() if n >= GRAM_PAGES)
    index = {g: k for k, g in enumerate(grams)}
    lines = [line for p in chosen for line in p.dump.grams]
    rows = [k for k, line in enumerate(lines) for g in line if g in index]
    columns = [index[g] for line in lines for g in line if g in index]
    values = [1.0 / np.sqrt(len(line)) for line in lines for g in line if g in index]
    matrix = sparse.csr_matrix((values, (rows, columns)), shape=(len(lines), len(grams)))
    labels = np.concatenate([p.labels for p in chosen])
    if len(set(labels)) < 2 or not grams:  # nothing to learn from: every line scores 0
        return LineWordModel({}, 0.0)
    model = SGDClassifier(loss="log_loss", alpha=LINE_WORDS_ALPHA, max_iter=LINE_WORDS_EPOCHS, tol=None,
                          random_state=7)
    model.fit(matrix, labels, sample_weight=_line_weights(chosen))
    weights = {g: round(float(w), 4) for g, w in zip(grams, model.coef_[0], strict=True) if round(float(w), 4)}
    return LineWordModel(weights, round(float(model.intercept_[0]), 4))


def _word_score_columns(pages: Sequence[DumpPage]) -> list[np.ndarray]:
    """Each page's `word_score_columns` from a line words model that did not see its site
    (`STACK_FOLDS` site-grouped folds; pages of one site: in sample)."""
    folds = min(STACK_FOLDS, len({p.site for p in pages}))
    assignment = _site_folds(pages, folds) if folds > 1 else [0] * len(pages)
    columns: list[np.ndarray] = [np.zeros((0, len(WORD_SCORE_FEATURES)))] * len(pages)
    for k in range(max(1, folds)):
        model = fit_line_words([p for p, f in zip(pages, assignment, strict=True) if f != k or folds < 2])
        for j, (page, f) in enumerate(zip(pages, assignment, strict=True)):
            if f == k:
                columns[j] = word_score_columns(model.scores(page.dump.grams))
    return columns


def _booster(pages: Sequence[DumpPage], words: Sequence[str]) -> str:
    """A LightGBM booster trained on the lines of `pages` (their feature rows, out-of-fold word
    score columns and `words`), as text."""
    import lightgbm

    index = {word: k for k, word in enumerate(words)}
    chosen = [p for p in pages if p.dump.lines]
    scores = _word_score_columns(chosen)
    matrix = sparse.vstack([
        line_matrix(np.hstack([p.dump.rows, columns]), p.dump.words, index)
        for p, columns in zip(chosen, scores, strict=True)
    ], format="csr")
    labels = np.concatenate([p.labels for p in chosen])
    data = lightgbm.Dataset(matrix, labels, weight=_line_weights(chosen))
    return str(lightgbm.train(BOOSTER, data, ROUNDS).model_to_string())


def fit_line_model(
    pages: Sequence[DumpPage], selection: Selection, by_kind: Mapping[str, Selection] | None = None
) -> LineModel:
    """The line model fitted on `pages` (vocabulary, line words model and booster) with the
    given selection rules."""
    words = vocabulary(pages)
    return LineModel(FEATURES, words, _booster(pages, words), selection, fit_line_words(pages), by_kind)


def score_pages(pages: Sequence[DumpPage], predictions: Sequence[str]) -> float:
    """Each folder's own metric over its pages (word F1: mean over pages; shingle F1: the
    article benchmark's macro figure), averaged over the folders present."""
    words = [word_prf(p.truth, text)[2] for p, text in zip(pages, predictions, strict=True) if p.word_metric]
    shingles = [page_counts(p.truth, text) for p, text in zip(pages, predictions, strict=True) if not p.word_metric]
    figures = ([float(np.mean(words))] if words else []) + ([aggregate(shingles)[0]] if shingles else [])
    return float(np.mean(figures)) if figures else 0.0


def _site_folds(pages: Sequence[DumpPage], folds: int) -> list[int]:
    """Fold of each page, the pages of one site in one fold."""
    keys = [f"{k}" for k in range(len(pages))]
    urls = {key: f"https://{page.site}/" for key, page in zip(keys, pages, strict=True)}
    assignment = fold_of(keys, folds, urls)
    return [assignment[key] for key in keys]


def choose_selection(
    pages: Sequence[DumpPage], folds: int = INNER_FOLDS
) -> tuple[Selection, dict[str, Selection], dict[Selection, float]]:
    """The selection rule that scores best over `folds` site-grouped folds of `pages` (each
    page cleaned by a booster trained on the other folds), the best rule of each labelled page
    kind with at least `MIN_KIND_PAGES` pages (over its pages alone), and every rule's score
    over all pages. Pages of fewer than two sites cannot be cross-validated: the first rule,
    unscored."""
    folds = min(folds, len({p.site for p in pages}))
    if folds < 2:
        return SELECTIONS[0], {}, {}
    assignment = _site_folds(pages, folds)
    probabilities: list[np.ndarray] = [np.zeros(0)] * len(pages)
    for k in range(folds):
        training = [p for p, f in zip(pages, assignment, strict=True) if f != k]
        model = fit_line_model(training, SELECTIONS[0])
        for j, (page, f) in enumerate(zip(pages, assignment, strict=True)):
            if f == k:
                probabilities[j] = model.probabilities(page.dump.rows, page.dump.words, page.dump.grams)
    texts = {
        selection: [join_paragraphs(story_paragraphs(p.dump, probabilities[j], selection)) for j, p in enumerate(pages)]
        for selection in SELECTIONS
    }
    scores = {selection: score_pages(pages, texts[selection]) for selection in SELECTIONS}
    best = max(SELECTIONS, key=lambda s: scores[s])
    by_kind = {}
    for kind, count in sorted(Counter(p.page_type for p in pages if p.page_type).items()):
        if count < MIN_KIND_PAGES:
            continue
        chosen = [j for j, p in enumerate(pages) if p.page_type == kind]
        by_kind[kind] = max(SELECTIONS, key=lambda s: score_pages(
            [pages[j] for j in chosen], [texts[s][j] for j in chosen]))
    return best, by_kind, scores


def train_line_model(
    pages: Sequence[DumpPage], inner_folds: int = INNER_FOLDS
) -> tuple[LineModel, dict[Selection, float]]:
    """The line model of `pages`: the selection rules chosen by cross-validation inside them,
    then the vocabulary, the line words model and the booster fitted on all of them; and each
    rule's inner score."""
    selection, by_kind, scores = choose_selection(pages, inner_folds)
    return fit_line_model(pages, selection, by_kind), scores


def page_type_model(pages: Sequence[DumpPage]) -> PageTypeModel | None:
    """A text page-type classifier trained on the labelled kinds of `pages` (None: no labels)."""
    from worker.evaluation.page_types import fit

    labelled = [p for p in pages if p.page_type in KINDS]
    if len({p.page_type for p in labelled}) < 2:
        return None
    rows = [text_features(p.text, p.url) for p in labelled]
    names = sorted({name for row in rows for name in row})
    x = np.array([[row.get(name, np.nan) for name in names] for row in rows], dtype=float)
    y = np.array([KINDS.index(str(p.page_type)) for p in labelled])
    return fit(x, y, names, PAGE_TYPE_SETTINGS, PAGE_TYPE_ROUNDS)


def fold_line_models(
    pages: Mapping[str, DumpPage], urls: Mapping[str, str], folds: int, extra: Sequence[DumpPage] = (),
) -> tuple[dict[str, LineModel], list[LineModel]]:
    """Held-out line models: for each page id of `pages` (folds by `fold_of`, grouped by site),
    and for each page of `extra` (a site of `pages` keeps its fold, other sites are dealt to
    folds by `fold_of` too), the model trained (`train_line_model`) on the pages of `pages` and
    `extra` in the other folds. So one set of models gives held-out figures of both."""
    assignment = fold_of(pages, folds, urls)
    fold_of_site = {pages[i].site: k for i, k in assignment.items()}
    others = [f"{j}" for j, p in enumerate(extra) if p.site not in fold_of_site]
    dealt = fold_of(others, folds, {key: f"https://{extra[int(key)].site}/" for key in others})
    extra_folds = [fold_of_site.get(p.site, dealt.get(f"{j}", 0)) for j, p in enumerate(extra)]
    models = {}
    for k in range(folds):
        training = [p for i, p in pages.items() if assignment[i] != k]
        training += [p for p, f in zip(extra, extra_folds, strict=True) if f != k]
        if not training:
            raise ValueError(f"fold {k + 1} of {folds} leaves no page to train on: give more pages or fewer folds")
        models[k], _ = train_line_model(training)
        models[k].page_types = page_type_model(training)
    return {i: models[assignment[i]] for i in pages}, [models[f] for f in extra_folds]


def held_out_report(name: str, pages: Sequence[DumpPage], models: Sequence[LineModel]) -> list[str]:
    """Figures of `pages` (one folder) cleaned by their held-out models through the clean step,
    in the folder's own metric: the lines of an evaluation report's section."""
    texts = []
    for page, model in zip(pages, models, strict=True):
        result = clean(RawPage(url=page.url, text=page.text), CleanModels(lines=model))
        texts.append(result.text if isinstance(result, Article) else "")
    if pages and pages[0].word_metric:
        metric, (f1, precision, recall) = "word F1", mean_words(
            word_prf(p.truth, t) for p, t in zip(pages, texts, strict=True))
    else:
        metric, (f1, precision, recall) = "shingle F1", aggregate(
            page_counts(p.truth, t) for p, t in zip(pages, texts, strict=True))
    return [f"{name} ({metric}, {len(pages)} pages, cleaned by the held-out line models above): "
            f"F1 {f1:.3f}  P {precision:.3f}  R {recall:.3f}"]
