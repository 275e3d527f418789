#!/usr/bin/env bash
# caio's route beside LiteLLM's Router, in one run, on this machine.
#
#   benches/compare/run.sh [SIZES]     (default 10,100,1000)
#
# Installs LiteLLM into target/compare-venv (once), runs caio's route
# benchmark (percentiles only) and LiteLLM's Router for the same numbers of
# services, then prints p50/p99 and the ratios. A benchmark, not a test:
# nothing is asserted. Needs python3 with venv and PyPI (only the first time).
set -euo pipefail
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  # The comment at the top of this file, without its `#`.
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
  exit 0
fi
cd "$(dirname "$0")/../.."
sizes="${1:-10,100,1000}"
litellm_version="1.110.2"
venv=target/compare-venv
out=target/compare
mkdir -p "$out"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import litellm" 2>/dev/null; then
  echo "installing litellm==$litellm_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm==$litellm_version"
fi
echo "caio: cargo bench -p caio-calculus --bench route (sizes $sizes)" >&2
CAIO_BENCH_ROUTE_SIZES="$sizes" CAIO_BENCH_ROUTE_PERCENTILES_ONLY=1 CAIO_BENCH_ROUTE_JSON="$PWD/$out/caio.jsonl" \
  cargo bench --quiet -p caio-calculus --bench route >&2
echo "litellm $litellm_version: Router.completion with mock responses (sizes $sizes)" >&2
"$venv/bin/python" benches/compare/litellm_router.py --sizes "$sizes" --out "$out/litellm.jsonl"
"$venv/bin/python" benches/compare/litellm_router.py --table "$out/caio.jsonl" "$out/litellm.jsonl"
