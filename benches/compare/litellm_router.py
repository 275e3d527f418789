"""LiteLLM's Router, measured the way caio's route bench measures caio.

In process, no network: N deployments of one model group, each answering
with a mock response, and one `await Router.acompletion` timed per decision
(the path LiteLLM's proxy takes; cost-based routing exists only there), for
each routing strategy. Prints one JSON line per (strategy, size), the shape
`crates/caio-calculus/benches/route.rs` writes with CAIO_BENCH_ROUTE_JSON.

    python litellm_router.py --sizes 10,100,1000 --out litellm.jsonl
    python litellm_router.py --table caio.jsonl litellm.jsonl

Run through ./run.sh, which installs LiteLLM into a virtual environment.
"""

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time

STRATEGIES = ["simple-shuffle", "latency-based-routing", "cost-based-routing"]


def deployments(n):
    # Distinct costs and ids, so cost- and latency-based routing have
    # something to choose between.
    return [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_key": "unused",
                "api_base": f"http://127.0.0.1:9/v{i}",
                "mock_response": "ok",
                "input_cost_per_token": 1e-7 * (1 + i % 97),
                "output_cost_per_token": 2e-7 * (1 + i % 89),
            },
            "model_info": {"id": f"svc-{i:06d}"},
        }
        for i in range(n)
    ]


def percentile(sorted_samples, q):
    return sorted_samples[round((len(sorted_samples) - 1) * q)]


async def decisions(strategy, n, rounds):
    from litellm import Router

    router = Router(model_list=deployments(n), routing_strategy=strategy, num_retries=0, set_verbose=False)
    messages = [{"role": "user", "content": "hello"}]
    for _ in range(min(20, rounds)):  # warm up: caches, latency history
        await router.acompletion(model="chat", messages=messages)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await router.acompletion(model="chat", messages=messages)
        samples.append(time.perf_counter() - started)
    return samples


def measure(strategy, n, rounds):
    samples = asyncio.run(decisions(strategy, n, rounds))
    samples.sort()
    return {
        "system": "litellm",
        "strategy": strategy,
        "services": n,
        "p50_us": percentile(samples, 0.50) * 1e6,
        "p99_us": percentile(samples, 0.99) * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
        "decisions": rounds,
    }


def table(files):
    rows = [json.loads(line) for path in files for line in open(path) if line.strip()]
    caio = {}
    for row in rows:
        if row["system"] == "caio":
            caio.setdefault(row["services"], row)  # the first token kind: HS256
    print(f"{'system':<8} {'strategy':<44} {'services':>8} {'p50 us':>12} {'p99 us':>12} {'p50 x':>8} {'p99 x':>8}")
    for row in sorted(rows, key=lambda r: (r["services"], r["system"] != "caio", r["strategy"])):
        base = caio.get(row["services"])
        ratio = lambda key: f"{row[key] / base[key]:8.0f}" if base and row["system"] != "caio" else f"{'':>8}"
        print(
            f"{row['system']:<8} {row['strategy']:<44} {row['services']:>8} {row['p50_us']:>12.1f} {row['p99_us']:>12.1f} {ratio('p50_us')} {ratio('p99_us')}"
        )
    print("x: LiteLLM's time over caio's (HS256 token) at the same number of services")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--out")
    parser.add_argument("--table", nargs="+", metavar="JSONL")
    args = parser.parse_args()
    if args.table:
        table(args.table)
        return
    # No network here and none wanted: the bundled cost map, no telemetry.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    logging.disable(logging.WARNING)
    out = open(args.out, "w") if args.out else sys.stdout
    for n in (int(s) for s in args.sizes.split(",")):
        for strategy in args.strategies.split(","):
            rounds = max(50, min(1000, 20000 // n))
            row = measure(strategy, n, rounds)
            print(json.dumps(row), file=out, flush=True)
            print(
                f"litellm {strategy:<24} {n:>6} deployments: p50 {row['p50_us']:>10.1f} us  p99 {row['p99_us']:>10.1f} us  ({rounds} decisions)",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    main()
