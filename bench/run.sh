#!/usr/bin/env bash
# Reproduces the README's speed figures, from the project root:
#   1. the shared ruler (../shared/bench/compare.sh --litellm): added latency and
#      throughput of llmrelay against a raw aiohttp floor and LiteLLM, one run;
#   2. the Anthropic-translated path against the OpenAI-compatible one (bench/translated.py);
#   3. the embedded model through the gateway (bench/local_model.py);
#   4. the resilience soak: 20,000 requests through two faulty upstreams (bench/soak.py);
#   5. jobs: throughput on SQLite and PostgreSQL, and push delay (bench/jobs.py);
#   6. keys, limits, accounting and metrics on, against the same gateway without them
#      (bench/accounted.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/llmrelay ]] || make install
bash ../shared/bench/compare.sh --litellm
.venv/bin/python bench/translated.py
.venv/bin/python bench/local_model.py
.venv/bin/python bench/soak.py
make services
.venv/bin/python bench/jobs.py
bash bench/accounted.sh
