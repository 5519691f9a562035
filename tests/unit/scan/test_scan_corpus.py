"""Precision and recall on the labelled corpus must both reach 0.95."""

from __future__ import annotations

from corpus_eval import FILES, score

from keysafe.scan.engine import Engine
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanOptions, ScanService


def test_precision_and_recall_on_labelled_corpus() -> None:
    service = ScanService(Engine(builtin_rules()), ScanOptions(no_ignore=True, jobs=1))
    result = service.scan_paths([str(FILES)])
    assert not result.problems
    prefix = str(FILES) + "/"
    result_score = score((f.file.removeprefix(prefix), f.line) for f in result.findings)
    print(f"precision={result_score.precision:.3f} recall={result_score.recall:.3f}")
    assert result_score.precision >= 0.95, result_score.false_positives
    assert result_score.recall >= 0.95, result_score.missed
