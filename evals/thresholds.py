"""Every eval threshold, named, in one place. A threshold is never lowered to make a run pass.

Where each number comes from is in its comment; `None` means "reported, not gated" for that engine.
"""

from __future__ import annotations

# --- retrieval (issue #2) -------------------------------------------------------------------------
# From the product's acceptance criteria: a candidate's own phrasing of a topic should put the right
# question first 85% of the time and in the top five almost always.
RETRIEVAL_HYBRID_RECALL_AT_1 = 0.85
RETRIEVAL_HYBRID_RECALL_AT_5 = 0.97

# --- grading (issue #4), offline engine -----------------------------------------------------------
# "Better answer, higher score": 95% of ladder pairs at different quality levels in the right order.
OFFLINE_PAIRWISE_ORDERING = 0.95
# "Same answer, same score": the offline engine is deterministic, so anything below 100% is a bug.
OFFLINE_REPEATABILITY_IDENTICAL = 1.0
# Rewording a complete answer should not move its score by more than half a point (one rubric
# point of five is worth 0.7-1.7 points, so 0.5 is less than one point's worth).
OFFLINE_PARAPHRASE_MAX_MEAN_CHANGE = 0.5
# The same content as bullets instead of prose: the same half-point budget as paraphrase.
OFFLINE_FORMATTING_MAX_MEAN_CHANGE = 0.5
# Text addressed to the grader must never raise a score (max change over all injected answers).
OFFLINE_INJECTION_MAX_CHANGE = 0.0
# Keyword stuffing and fluff padding must not beat the partial answer they stand beside (share of
# ladders where they do must be 0).
OFFLINE_STUFFING_BEATS_PARTIAL_SHARE = 0.0
OFFLINE_PADDING_BEATS_PARTIAL_SHARE = 0.0

# --- grading, LLM engines (run on demand) ---------------------------------------------------------
# An LLM judge is not bit-for-bit deterministic across providers even at temperature 0; 90% identical
# is the bar at which a candidate regrading the same answer rarely sees a different score.
LLM_PAIRWISE_ORDERING = 0.95
LLM_REPEATABILITY_IDENTICAL = 0.9
LLM_PARAPHRASE_MAX_MEAN_CHANGE = 0.5
LLM_INJECTION_MAX_CHANGE = 0.0

# --- follow-ups (issue #5), offline --------------------------------------------------------------
# A follow-up should probe what the answer actually missed (per the ladder annotations) 90% of the time:
# the product's aim for the offline interviewer. Reported by `mockml eval grading`; an aim, not a gate.
FOLLOWUP_TARGETS_MISSED_SHARE = 0.9
# A follow-up must never give the answer away.
FOLLOWUP_LEAK_FREE_SHARE = 1.0
