#!/usr/bin/env bash
# The shared ruler's measures (added latency, sequential; throughput at 32 connections), for
# llmrelay as the ruler runs it and for llmrelay with a master key, a virtual key with rate
# limits and a budget, usage and cost recorded for every request, and metrics: side by side,
# against the same aiohttp floor, in one run.
# usage: bash bench/accounted.sh   (from the project root, after the README set-up)
set -euo pipefail
RULER="$(cd ../shared/bench && pwd)"
TOOLS="${BENCH_VENV:-/tmp/llmrelay-bench-venv}"
[[ -x "$TOOLS/bin/python" ]] || { python3 -m venv "$TOOLS"; "$TOOLS/bin/pip" install -q "uvicorn[standard]" aiohttp httpx; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
WORK="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { "$TOOLS/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 150); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done; echo "not ready: $1"; return 1; }

UP=$(free_port); FLOOR=$(free_port); PLAIN=$(free_port); KEYED=$(free_port)
MASTER="sk-bench-master-$(openssl rand -hex 8)"
"$TOOLS/bin/python" "$RULER/fake_upstream.py" "$UP" 20 >"$WORK/up.log" 2>&1 & PIDS+=($!)
"$TOOLS/bin/python" "$RULER/floor_aiohttp.py" "$FLOOR" "http://127.0.0.1:$UP/v1" >"$WORK/floor.log" 2>&1 & PIDS+=($!)
model="models:
  - {name: fake-model, provider: openai, model: fake-model, base_url: 'http://127.0.0.1:$UP/v1', api_key: sk-fake}"
printf '%s\ndata_dir: %s/plain\n' "$model" "$WORK" >"$WORK/plain.yaml"
printf '%s\ndata_dir: %s/keyed\nmaster_key: %s\npricing: {fake-model: {input: 0.15, output: 0.6}}\n' \
  "$model" "$WORK" "$MASTER" >"$WORK/keyed.yaml"
.venv/bin/llmrelay serve --config "$WORK/plain.yaml" --port "$PLAIN" >"$WORK/plain.log" 2>&1 & PIDS+=($!)
.venv/bin/llmrelay serve --config "$WORK/keyed.yaml" --port "$KEYED" >"$WORK/keyed.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$UP/v1/models"
wait_http "http://127.0.0.1:$PLAIN/health"
wait_http "http://127.0.0.1:$KEYED/health"
# Limits far above what the run sends, so that every limit is checked and none refuses.
KEY=$(curl -sf "http://127.0.0.1:$KEYED/admin/keys" -H "authorization: Bearer $MASTER" \
  -H 'content-type: application/json' \
  -d '{"name": "bench", "rpm": 100000000, "tpm": 1000000000000, "budget_usd": 1000000}' |
  "$TOOLS/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["key"])')
for script in chat chat_stream; do
  sed "s/Bearer sk-bench/Bearer $KEY/" "$RULER/$script.lua" >"$WORK/$script.lua"
done
TARGETS=("floor=http://127.0.0.1:$FLOOR/v1" "plain=http://127.0.0.1:$PLAIN/v1" "accounted=http://127.0.0.1:$KEYED/v1")

echo "== added latency, sequential requests (median of alternating runs)"
"$TOOLS/bin/python" "$RULER/overhead.py" 300 "http://127.0.0.1:$UP/v1" "${TARGETS[@]}" --key "$KEY" | tee "$WORK/seq.txt"
echo "== added latency, 20-chunk SSE stream"
"$TOOLS/bin/python" "$RULER/overhead.py" 200 "http://127.0.0.1:$UP/v1" "${TARGETS[@]}" --stream --key "$KEY" | tee "$WORK/seqs.txt"
rps() { wrk -t1 -c32 -d"${BENCH_SECONDS:-8}"s -s "$WORK/$1" --latency "$2/chat/completions" 2>&1 | awk '/Requests\/sec/{r=$2} /Non-2xx/{e=$NF} END{print r+0, e+0}'; }
echo "== throughput at 32 connections (wrk, req/s, non-2xx)"
for t in "${TARGETS[@]}"; do
  n="${t%%=*}"; u="${t#*=}"
  read -r a ae < <(rps chat.lua "$u"); read -r b be < <(rps chat_stream.lua "$u")
  printf "%-10s plain %10s (non-2xx %s)   stream %10s (non-2xx %s)\n" "$n" "$a" "$ae" "$b" "$be"
done
sleep 1  # the last records are written within half a second
echo "== recorded by the accounted gateway"
curl -sf "http://127.0.0.1:$KEYED/v1/usage" -H "authorization: Bearer $MASTER" |
  "$TOOLS/bin/python" -c 'import json, sys; t = json.load(sys.stdin)["totals"]
print("requests", t["requests"], "tokens", t["prompt_tokens"] + t["completion_tokens"], "cost_usd", t["cost_usd"])'
