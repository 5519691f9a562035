"""Precision and recall of findings against the labelled scan corpus."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "data" / "scan_corpus"
FILES = CORPUS / "files"


@dataclass
class Score:
    """Precision, recall and F1 with the lists behind them."""

    true_positives: int
    false_positives: list[tuple[str, int]]
    missed: list[tuple[str, int]]

    @property
    def precision(self) -> float:
        found = self.true_positives + len(self.false_positives)
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        total = self.true_positives + len(self.missed)
        return self.true_positives / total if total else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def labels() -> set[tuple[str, int]]:
    """``(file, line)`` of every planted secret, files relative to the corpus root."""
    doc = json.loads((CORPUS / "labels.json").read_text())
    return {(e["file"], e["line"]) for e in doc["secrets"]}


def score(found: Iterable[tuple[str, int]]) -> Score:
    """Score reported ``(file, line)`` pairs (several findings on one line count once)."""
    truth = labels()
    reported = set(found)
    return Score(
        true_positives=len(reported & truth),
        false_positives=sorted(reported - truth),
        missed=sorted(truth - reported),
    )
