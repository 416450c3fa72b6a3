"""Loader for the SemEval-2013 Task 7 3-way training sets (human-graded short answers).

Data: Dzikovska et al., "SemEval-2013 Task 7: The Joint Student Response Analysis and 8th Recognizing
Textual Entailment Challenge", SemEval 2013; CC-BY-SA 3.0 (see the dataset's LICENSE). We read it from
`shared/datasets/semeval2013-3way/` and never copy it into the repository.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from app.config import REPO_ROOT

DEFAULT_DIR = REPO_ROOT.parent / "shared" / "datasets" / "semeval2013-3way"
LABELS = ("correct", "contradictory", "incorrect")
ATTRIBUTION = (
    "SemEval-2013 Task 7 (Dzikovska, Nielsen, Brew, Leacock, Giampiccolo, Bentivogli, Clark, Dagan, Dang), "
    "CC-BY-SA 3.0"
)


@dataclass(frozen=True)
class Item:
    """One graded student answer with its question and reference answers."""

    corpus: str
    question_id: str
    question: str
    references: tuple[str, ...]
    answer: str
    label: str


def load(data_dir: Path = DEFAULT_DIR) -> list[Item]:
    """Every student answer in both corpora, in a stable order."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"SemEval data not found at {data_dir}")
    items: list[Item] = []
    for corpus in ("beetle", "sciEntsBank"):
        for path in sorted((data_dir / corpus).glob("*.xml")):
            root = ET.parse(path).getroot()
            qid = f"{corpus}/{root.get('id')}"
            question = (root.findtext("questionText") or "").strip()
            refs = tuple(
                (r.text or "").strip()
                for r in root.iter("referenceAnswer")
                if (r.text or "").strip() and r.get("category", "BEST") in ("BEST", "GOOD", "MINIMAL")
            )
            for sa in root.iter("studentAnswer"):
                label = sa.get("accuracy", "")
                if label in LABELS:
                    items.append(Item(corpus, qid, question, refs, (sa.text or "").strip(), label))
    return items
