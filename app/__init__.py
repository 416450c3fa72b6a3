"""mockml: an offline-first mock-interview coach for machine-learning-engineer candidates."""

from __future__ import annotations

import os

# Offline by construction: nothing reaches a hub, a telemetry endpoint or a price list at run time.
# setdefault so that a user who really wants otherwise can still say so.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
