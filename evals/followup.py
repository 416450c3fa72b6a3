"""Follow-up targeting eval: does the offline follow-up probe what the answer really left out, without giving it away?

For each ladder's partial, vague, wrong and paraphrase answers: grade with the offline grader, choose an offline
follow-up, and compare its target with the answer's annotation (the ladder's `covers`), not with the grader's
verdicts, so grading mistakes count against the follow-up as a candidate would feel them.

- `targets_missed_share`: follow-ups aimed at a point the annotation says the answer did not cover; a deeper
  probe (no target) counts as right only when the annotation covers every point.
- `leak_free_share`: follow-ups that pass `app.followup.leaks` for their target (key terms of the point that
  neither the answer nor the question used, or more than four consecutive words of the point's text).
- `leak_free_strict_share`: the same check against every point the annotation says was not covered, with only
  the answer (not the question) counting as already said.
- `ideal_target_share`: follow-ups aimed exactly at the heaviest point the annotation says is not covered.
- `second_*`: the same for the next follow-up, after the first was asked.

By default each ladder question is graded by the calibration fold whose thresholds never saw it (the shipped
thresholds were fitted on all ladders); `--shipped` uses the shipped grader instead.

Run: `.venv/bin/python -m evals.followup [--shipped] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.followup import FollowUpChoice, choose_follow_up, leaks
from evals.grading.ladders import Answer, Ladder

# Named threshold (a threshold is never lowered to make a run pass): nine follow-ups in ten must probe something
# the answer really missed; a follow-up that gives the answer away is never acceptable.
from evals.thresholds import FOLLOWUP_LEAK_FREE_SHARE as LEAK_FREE_SHARE
from evals.thresholds import FOLLOWUP_TARGETS_MISSED_SHARE as TARGETS_MISSED_SHARE
KINDS = ("partial", "vague", "wrong", "paraphrase")


def _right(ladder: Ladder, answer: Answer, choice: FollowUpChoice) -> bool:
    if choice.target_point is None:
        return set(answer.covers) >= {p.id for p in ladder.question.rubric}
    return choice.target_point not in answer.covers


def _ideal(ladder: Ladder, answer: Answer) -> str | None:
    """The heaviest point the annotation says is not covered (rubric order breaks ties)."""
    open_points = [(-p.weight, i, p.id) for i, p in enumerate(ladder.question.rubric) if p.id not in answer.covers]
    return min(open_points)[2] if open_points else None


def _leak_free(ladder: Ladder, answer: Answer, choice: FollowUpChoice, strict: bool) -> bool:
    q = ladder.question
    if strict:
        points = [p for p in q.rubric if p.id not in answer.covers]
        return all(leaks(choice.text, p, answer.text) is None for p in points)
    if choice.target_point is None:
        return True
    return leaks(choice.text, q.point(choice.target_point), f"{q.text}\n{answer.text}") is None


def _share(hits: list[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def measure(grader: Any, ladders: list[Ladder], *, held_out: bool = True) -> dict[str, Any]:
    """Grade each ladder's partial, vague, wrong and paraphrase answers offline and score the offline follow-ups."""
    from evals.grading.run import held_out_graders

    started = time.perf_counter()
    per_question = held_out_graders(grader) if held_out else {}
    right: list[bool] = []
    right_by_kind: dict[str, list[bool]] = {k: [] for k in KINDS}
    ideal: list[bool] = []
    clean: list[bool] = []
    strict: list[bool] = []
    second_right: list[bool] = []
    second_clean: list[bool] = []
    sources: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    misses: list[dict[str, Any]] = []
    none = 0
    for ladder in ladders:
        q = ladder.question
        use = per_question.get(q.id, grader)
        for kind in KINDS:
            answer = ladder.answers[kind]
            card = use.grade(q.id, answer.text, engine="offline")
            choice = choose_follow_up(q, card, answer=answer.text)
            if choice is None:
                none += 1
                continue
            ok = _right(ladder, answer, choice)
            right.append(ok)
            right_by_kind[kind].append(ok)
            ideal.append(choice.target_point == _ideal(ladder, answer))
            clean.append(_leak_free(ladder, answer, choice, strict=False))
            strict.append(_leak_free(ladder, answer, choice, strict=True))
            sources[choice.source] += 1
            reasons[choice.reason] += 1
            if not ok:
                verdict = next((v.verdict.value for v in card.verdicts if v.point_id == choice.target_point), None)
                misses.append({"question": q.id, "kind": kind, "target": choice.target_point, "grader_verdict": verdict,
                               "annotated_covers": answer.covers, "text": choice.text})
            nxt = choose_follow_up(q, card, [choice.text], answer=answer.text)
            if nxt is not None:
                second_right.append(_right(ladder, answer, nxt))
                second_clean.append(_leak_free(ladder, answer, nxt, strict=False))
    result: dict[str, Any] = {
        "grader": "offline, held-out calibration folds" if held_out else "offline, shipped thresholds",
        "ladders": len(ladders),
        "ladders_held_out": sum(l.question.id in per_question for l in ladders),
        "answers": len(ladders) * len(KINDS),
        "follow_ups": len(right),
        "no_follow_up": none,
        "targets_missed_share": _share(right),
        "targets_missed_share_by_kind": {k: _share(v) for k, v in right_by_kind.items()},
        "ideal_target_share": _share(ideal),
        "leak_free_share": _share(clean),
        "leak_free_strict_share": _share(strict),
        "second_targets_missed_share": _share(second_right),
        "second_leak_free_share": _share(second_clean),
        "sources": dict(sorted(sources.items())),
        "reasons": dict(sorted(reasons.items())),
        "misses": misses,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["checks"] = [
        {"name": "follow-up targets a missed point (share)", "value": result["targets_missed_share"], "op": ">=",
         "threshold": TARGETS_MISSED_SHARE, "passed": (result["targets_missed_share"] or 0) >= TARGETS_MISSED_SHARE},
        {"name": "follow-up leak-free (share)", "value": result["leak_free_share"], "op": ">=",
         "threshold": LEAK_FREE_SHARE, "passed": (result["leak_free_share"] or 0) >= LEAK_FREE_SHARE},
    ]
    result["passed"] = all(c["passed"] for c in result["checks"])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the eval on the real ladders and print the numbers (exit 1 when a check fails)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipped", action="store_true", help="grade with the shipped thresholds, not held-out folds")
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    import app  # noqa: F401 - offline environment defaults before any model loads
    from app.config import get_settings
    from app.grading import Grader
    from app.runtime import get_bank
    from evals.grading.ladders import load

    settings = get_settings()
    bank = get_bank(settings)
    result = measure(Grader(settings, bank), load(bank), held_out=not args.shipped)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "misses"}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    for m in result["misses"]:
        print(f"miss: {m['question']}/{m['kind']} -> {m['target']} (grader {m['grader_verdict']}, annotated covers {m['annotated_covers']})")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
