"""README's and docs/findings.md's tables are written from kept result files, never typed by hand."""
from pathlib import Path

import pytest

from mtkd.report import documents
from mtkd.study.results import RunResults

ROOT = Path(__file__).resolve().parents[2]
KEPT = ROOT / "docs" / "results" / "embedded"
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "findings.md"]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_every_table_in_the_documents_matches_the_kept_result_files(doc):
    text = doc.read_text()
    assert documents.BLOCK.search(text), f"{doc.name} has no generated table"
    assert documents.render(text, RunResults(KEPT)) == text, (
        f"{doc.name}: a table differs from {KEPT.relative_to(ROOT)}; rewrite it with `make docs` from a run")


def test_a_number_changed_by_hand_is_caught():
    text = DOCUMENTS[0].read_text()
    block = documents.BLOCK.search(text)
    body = block.group(3)
    digit = next(i for i, ch in enumerate(body) if ch.isdigit())
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1:]
    tampered = text[:block.start(3)] + edited + text[block.end(3):]
    assert documents.render(tampered, RunResults(KEPT)) != tampered


def test_unknown_tables_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown document table 'nope'"):
        documents.render("<!-- mtkd:table nope -->\nx\n<!-- /mtkd:table -->", RunResults(KEPT))
    with pytest.raises(FileNotFoundError, match="lacks params.yaml"):
        documents.keep(tmp_path, tmp_path / "kept")
