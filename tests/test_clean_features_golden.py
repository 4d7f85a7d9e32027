"""What the cleaner's learned models read of a page stays the same when the code computing it
changes for speed: the candidate blocks' texts and feature rows, the page-type features and
tokens, byte for byte, against digests recorded in `fixtures/clean-features.json` for every
HTML page of the fixture folders. The features take their logarithms from the math module,
not numpy's vectorised ones (which on processors with AVX-512 differ in the last bit), so the
digests hold on any processor. A change meant to alter features (a new feature, a fixed bug)
records them again, the model retrained with it:
`PYTHONPATH=. python tests/test_clean_features_golden.py --write`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree
from lxml import html as lxml_html

from worker.steps.clean.blocks import page_blocks
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.page_type import read_tree
from worker.steps.clean.structure import BLOCK_TAGS, text_blocks

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "clean-features.json"
FOLDERS = ("wcxb", "page-types", "pages")


def _pages() -> dict[str, tuple[str, str]]:
    found = {}
    for folder in FOLDERS:
        truth = json.loads((FIXTURES / folder / "ground-truth.json").read_text(encoding="utf-8"))
        for path in sorted((FIXTURES / folder / "html").glob("*.html.gz")):
            page_id = path.name.removesuffix(".html.gz")
            found[f"{folder}/{page_id}"] = (gzip.decompress(path.read_bytes()).decode("utf-8"), truth[page_id]["url"])
    return found


def digest(markup: str, url: str) -> str:
    """SHA-256 of the blocks' texts and feature rows and the page-type features and tokens."""
    tree = drop_code(parse_html(markup))
    blocks = page_blocks(tree, url)
    features, tokens = read_tree(tree, url)
    parts = [orjson.dumps(blocks.texts), blocks.features.tobytes(),
             orjson.dumps(features, option=orjson.OPT_SORT_KEYS), orjson.dumps(sorted(set(tokens)))]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


PAGES = _pages()


@pytest.mark.parametrize("key", sorted(PAGES))
def test_the_models_read_the_recorded_features(key: str) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert digest(*PAGES[key]) == recorded[key]


def test_every_fixture_page_is_recorded() -> None:
    assert set(json.loads(RECORDED.read_text(encoding="utf-8"))) == set(PAGES)


_TEXT_NODES = (
    "//body//text()[normalize-space()][not(parent::script or parent::style or parent::noscript"
    " or parent::template or parent::button or parent::option or parent::textarea)]"
)


def _xpath_blocks(tree: Any) -> list[tuple[Any, str, int]]:
    """The blocks as the XPath definition reads them: each text node's block is its nearest
    block-tag ancestor, link text when a link lies between."""
    blocks: list[tuple[Any, str, int]] = []
    current, parts, links = None, [], 0
    for node in tree.xpath(_TEXT_NODES):
        holder = node.getparent()
        if node.is_tail:
            holder = holder.getparent()
        owner, linked = holder, False
        while not (isinstance(owner.tag, str) and owner.tag in BLOCK_TAGS) and owner.getparent() is not None:
            linked = linked or owner.tag == "a"
            owner = owner.getparent()
        if owner is not current or (node.is_tail and node.getparent().tag == "br"):
            if current is not None:
                blocks.append((current, " ".join("".join(parts).split()), links))
            current, parts, links = owner, [], 0
        parts.append(str(node))
        links += len(node) if linked else 0
    if current is not None:
        blocks.append((current, " ".join("".join(parts).split()), links))
    return blocks


TRICKY = (
    "<html><body>lead <b>bold</b> tail<div>one<br>two <a href='/x'>link <i>deep</i></a> after</div>"
    "<script>var x</script>after script<noscript>hidden</noscript> after noscript"
    "<p>a<!-- note -->b <button>press</button>c<textarea>typed</textarea>d</p>"
    "<ul><li>item <span>\u00a0</span></li><li> \n\t </li></ul><table><tr><td>cell</td></tr></table>"
    "<span>loose <a>inline</a></span>tail text<?pi x?>after pi</body></html>"
)


@pytest.mark.parametrize("keep_comments", [False, True])
def test_text_blocks_read_the_text_nodes_of_the_xpath_definition(keep_comments: bool) -> None:
    parser = lxml_html.HTMLParser(remove_comments=not keep_comments, remove_pis=not keep_comments)
    trees = [lxml_html.document_fromstring(TRICKY, parser=parser)]
    trees += [drop_code(parse_html(markup)) for markup, _ in PAGES.values()]
    for tree in trees:
        expected = _xpath_blocks(tree)
        assert [(b.element, b.text, b.link_chars) for b in text_blocks(tree)] == expected
    assert any(isinstance(el, etree._Comment) for el in trees[0].iter()) == keep_comments


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    RECORDED.write_text(json.dumps({key: digest(*page) for key, page in sorted(PAGES.items())}, indent=0) + "\n",
                        encoding="utf-8")
    print(f"{len(PAGES)} pages recorded in {RECORDED}")
