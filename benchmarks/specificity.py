"""How well the verifier tells work on the assigned pages from work elsewhere.

    .venv/bin/python benchmarks/specificity.py                  # 6 honest + 1 wrong-pages, 8 rounds (~10 min on 2 cores)
    .venv/bin/python benchmarks/specificity.py --rounds 4 --honest 3   # a quick look

A swarm simulated in one process with the node's own pieces (`InnerTrainer`,
`assign_pages`, `ErrorFeedback` with the run's codec, the outer SGD step of
the default run spec): every round each node trains from θ_r on its assigned
pages, except one that trains on the pages of another identity (the
`wrong-pages` adversary). Inner steps per node are drawn from 15..40 per
round, as the demo's deadline-bounded rounds on a busy machine give. Then one
verifier checks every contribution with the node's own `run_checks` (same
pages, windows, control pages and tolerances as `node/verifier`), carrying its
running history, and the figures show the margin: the lowest running-mean
specificity an honest node reached against the highest the cheater reached,
and the verdicts. It also times one round of training and one check on one
thread: the verifier's cost as a share of a round's compute.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from node.config import RunSpec
from node.data.sources import open_corpus
from node.trainer import params
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from node.verifier.checks import CheckInputs, LossMemo, run_checks
from node.verifier.verifier import HISTORY_ROUNDS, VerifierSettings
from protocol.assignment import (
    assign_pages,
    check_pages,
    control_pages,
    derive,
    eval_pages,
)
from protocol.compression import ErrorFeedback, get_codec

CHEATER = "wrong-pages"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--honest", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seed", default="specificity")
    ap.add_argument("--pages-per-check", type=int, default=VerifierSettings().pages_per_check)
    ap.add_argument("--out", default="benchmarks/results/specificity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    spec = RunSpec()
    run_id = derive("benchmark", args.seed)
    settings = VerifierSettings(pages_per_check=args.pages_per_check)
    corpus = open_corpus(spec.data, Path(tempfile.gettempdir()) / "gradswarm-corpus")
    excluded = frozenset(eval_pages(run_id, corpus.num_pages, spec.data.eval_pages))
    codec = get_codec(spec.codec.codec_spec())
    nodes = [f"honest{i}" for i in range(args.honest)] + [CHEATER]
    models = {h: build_model(spec.model.preset, spec.model.seed) for h in nodes}
    t = spec.train
    trainers = {h: InnerTrainer.from_spec(models[h], t, "cpu") for h in nodes}
    feedback = {h: ErrorFeedback() for h in nodes}
    scratch = build_model(spec.model.preset, spec.model.seed)
    theta = params.flatten(scratch).clone()
    history: dict[str, list[float]] = {h: [] for h in nodes}
    rows = []
    train_seconds, check_seconds = [], []  # per node-round, per checked contribution
    for r in range(args.rounds):
        started = time.time()
        assigned = {h: assign_pages(run_id, r, h, corpus.num_pages, spec.data.pages_per_round, excluded) for h in nodes}
        vectors = {}
        for h in nodes:
            trained_on = assign_pages(run_id, r, h + "/elsewhere", corpus.num_pages, spec.data.pages_per_round, excluded) if h == CHEATER else assigned[h]
            steps = 15 + derive(run_id, "steps", r, h)[0] % 26
            params.load_flat(models[h], theta)
            tick = time.perf_counter()
            trainers[h].train(corpus.pages(trained_on), steps=steps, seed=int.from_bytes(derive(run_id, "seed", r, h)[:8], "little"))
            train_seconds.append((time.perf_counter() - tick) / steps * t.inner_steps)  # as if it ran all H steps
            payload = feedback[h].step(theta - params.flatten(models[h]), codec, beta=spec.codec.error_feedback_beta)
            vectors[h] = codec.decode(payload, theta.numel())
        busy = set(excluded).union(*assigned.values())
        control = corpus.pages(control_pages(run_id, r, "verifier", settings.pages_per_check, corpus.num_pages, frozenset(busy)))
        memo = LossMemo()  # the control pages' losses, shared by this round's checks
        for h in nodes:
            prior = history[h][-HISTORY_ROUNDS:]
            checked = check_pages(run_id, r, "verifier", h, assigned[h], settings.pages_per_check)
            inputs = CheckInputs(
                theta=theta, vector=vectors[h], others=[vectors[o] for o in nodes if o != h],
                assigned=corpus.pages(checked), control=control, stale=False, prior_specificities=tuple(prior),
            )
            tick = time.perf_counter()
            result = run_checks(scratch, inputs, t.seq_len, settings.windows_per_page, settings.tolerances, memo)
            check_seconds.append(time.perf_counter() - tick)
            if result.metrics["specificity_judged"]:
                history[h].append(result.metrics["specificity"])
            rows.append({"round": r, "node": h, **{k: result.metrics[k] for k in ("specificity", "median_specificity", "work_ratio")},
                         "verdict": result.verdict, "reason": result.reason})
            print(f"round {r} {h:>11}: specificity {result.metrics['specificity']:+.3f} "
                  f"median {result.metrics['median_specificity']:+.3f} -> {result.verdict} {result.reason}", flush=True)
        theta = theta - spec.outer.lr * torch.stack([vectors[h] for h in nodes]).mean(0)
        print(f"round {r}: {time.time() - started:.0f} s", flush=True)

    judged = [row for row in rows if row["round"] + 1 >= settings.tolerances.min_history]
    honest = [row for row in judged if row["node"] != CHEATER]
    cheater = [row for row in judged if row["node"] == CHEATER]
    summary = {
        "honest_nodes": args.honest,
        "rounds": args.rounds,
        "threshold": settings.tolerances.min_median_specificity,
        "honest_specificity_median": statistics.median(row["specificity"] for row in rows if row["node"] != CHEATER),
        "cheater_specificity_median": statistics.median(row["specificity"] for row in rows if row["node"] == CHEATER),
        "honest_min_median_specificity": min(row["median_specificity"] for row in honest),
        "cheater_max_median_specificity": max(row["median_specificity"] for row in cheater),
        "honest_fails": sum(row["verdict"] == "fail" for row in honest),
        "cheater_first_fail_round": next((row["round"] for row in cheater if row["verdict"] == "fail"), None),
        # Compute, one thread each: a full round of H inner steps, and one check (the control
        # pages' losses are shared by a verifier's checks of a round; the first check pays them).
        "train_seconds_per_round": statistics.median(train_seconds),
        "check_seconds": statistics.median(check_seconds),
        "check_share_of_round": statistics.median(check_seconds) / statistics.median(train_seconds),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
