"""DSPy programs (``programs/``), the LM layer (``llm/``), the index (``index/``) and the data
checks (``checks/``); shared configuration and helpers at the top. No Prefect here.

Importing this package sets the environment sage needs offline (no telemetry, no model hub,
no remote LiteLLM cost map); ``flows`` imports it before Prefect loads. A variable already
set wins.
"""

import os

OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)
