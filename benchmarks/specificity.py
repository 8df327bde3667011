"""How well the verifier tells work on the assigned pages from work elsewhere.

    .venv/bin/python benchmarks/specificity.py                  # 6 honest + 1 wrong-pages, 8 rounds (~10 min on 2 cores)
    .venv/bin/python benchmarks/specificity.py --rounds 4 --honest 3 --out /tmp/specificity.json   # a quick look

A swarm simulated in one process that runs the node's own round with the
default run spec: every round each node trains from θ_r on its assigned pages
(`local_delta` with the node's seed, then `ErrorFeedback.step` into the run's
codec; benchmarks/peers.py), except one that trains on the pages of another
identity (the `wrong-pages` adversary), and θ_{r+1} is the node's
`next_state`. Inner steps per node are drawn from 15..40 per round, as the
demo's deadline-bounded rounds on a busy machine give. Then one node's
`Verifier` checks every contribution with `verify_round` (its pages, windows,
control pages, reference order, tolerances and running history), and the
figures show the margin: the lowest running-median specificity an honest node
reached against the highest the cheater reached, and the verdicts. It also
times one round of training and the checks on one thread: the verifier's cost
as a share of a round's compute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from bittensor.sp_core import Keypair  # noqa: E402

from benchmarks.peers import Peer  # noqa: E402
from node.audit.store import AuditStore  # noqa: E402
from node.config import RunSpec  # noqa: E402
from node.data.corpus import Corpus  # noqa: E402
from node.data.sources import open_corpus  # noqa: E402
from node.outer.optimizer import OuterOptimizer, OuterState  # noqa: E402
from node.round.apply import next_state  # noqa: E402
from node.trainer import params  # noqa: E402
from node.verifier.verifier import Contribution, Verifier, VerifierSettings  # noqa: E402
from protocol.assignment import assign_pages, derive, eval_pages  # noqa: E402
from protocol.compression import Codec, get_codec  # noqa: E402
from protocol.messages import ContributionMeta, VerificationRecord  # noqa: E402

CHEATER = "wrong-pages"


def train_round(
    spec: RunSpec,
    run_id: bytes,
    r: int,
    corpus: Corpus,
    excluded: frozenset[int],
    codec: Codec,
    peers: dict[str, Peer],
    state: OuterState,
    base_hash: bytes,
    train_seconds: list[float],
) -> dict[str, Contribution]:
    """Every node's contribution to round r, as the verifier receives it (payload, its announcement, the decoded vector)."""
    contributions = {}
    for h, peer in peers.items():
        # The adversary trains on another identity's pages, as WrongPages.pages_of does in
        # devnet/adversaries.py; everything else about its round is the honest one.
        owner = h + "/elsewhere" if h == CHEATER else h
        pages = assign_pages(run_id, r, owner, corpus.num_pages, spec.data.pages_per_round, excluded)
        # The benchmark's choice, not the node's: fewer steps than H, as deadlines cut them short on a busy machine.
        steps = 15 + derive(run_id, "steps", r, h)[0] % 26
        tick = time.perf_counter()
        delta = peer.delta(run_id, r, state.theta, corpus.pages(pages), steps)
        train_seconds.append((time.perf_counter() - tick) / steps * spec.train.inner_steps)  # as if it ran all H steps
        payload = peer.feedback.step(delta, codec, beta=spec.codec.error_feedback_beta)
        # Unsigned: the verifier reads the announcement's digest and base, the pool checks signatures.
        meta = ContributionMeta(
            run_id=run_id,
            round=r,
            hotkey=h,
            peer_id=b"",
            digest=hashlib.sha256(payload).digest(),
            nbytes=len(payload),
            codec=spec.codec.name,
            base_state_hash=base_hash,
        )
        contributions[h] = Contribution(meta, codec.decode(payload, state.theta.numel()), payload)
    return contributions


def row_of(r: int, node: str, record: VerificationRecord) -> dict:
    """The figures of one signed record that the table and the JSON keep."""
    metrics = {m.name: m.value for m in record.metrics}
    return {
        "round": r,
        "node": node,
        **{k: metrics[k] for k in ("specificity", "median_specificity", "work_ratio")},
        "verdict": record.verdict,
        "reason": record.reason,
    }


def summarize(
    rows: list[dict], args: argparse.Namespace, settings: VerifierSettings, train_seconds: list[float], check_seconds: list[float]
) -> dict:
    judged = [row for row in rows if row["round"] + 1 >= settings.tolerances.min_history]
    honest = [row for row in judged if row["node"] != CHEATER]
    cheater = [row for row in judged if row["node"] == CHEATER]
    return {
        "honest_nodes": args.honest,
        "rounds": args.rounds,
        "threshold": settings.tolerances.min_median_specificity,
        "honest_specificity_median": statistics.median(row["specificity"] for row in rows if row["node"] != CHEATER),
        "cheater_specificity_median": statistics.median(row["specificity"] for row in rows if row["node"] == CHEATER),
        "honest_min_median_specificity": min(row["median_specificity"] for row in honest),
        "cheater_max_median_specificity": max(row["median_specificity"] for row in cheater),
        "honest_fails": sum(row["verdict"] == "fail" for row in honest),
        "cheater_first_fail_round": next((row["round"] for row in cheater if row["verdict"] == "fail"), None),
        # Compute, one thread each: a full round of H inner steps, and one check: a round's
        # `verify_round` over the checks it made, so the control pages' losses, which all
        # checks of a round share, and storing and signing the records are spread over them.
        "train_seconds_per_round": statistics.median(train_seconds),
        "check_seconds": statistics.median(check_seconds),
        "check_share_of_round": statistics.median(check_seconds) / statistics.median(train_seconds),
        "rows": rows,
    }


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
    corpus = open_corpus(spec.data, Path(tempfile.gettempdir()) / "gradswarm-corpus")
    excluded = frozenset(eval_pages(run_id, corpus.num_pages, spec.data.eval_pages))
    codec = get_codec(spec.codec.codec_spec())
    outer = OuterOptimizer(lr=spec.outer.lr, momentum=spec.outer.momentum, nesterov=spec.outer.nesterov)
    nodes = [f"honest{i}" for i in range(args.honest)] + [CHEATER]
    peers = {h: Peer.build(h, spec.model.preset, spec.model.seed, spec.train) for h in nodes}
    state = OuterState.fresh(params.flatten(peers[nodes[0]].model))
    # A node checks `samples` contributions a round; this verifier checks all of them, to measure every node.
    settings = VerifierSettings(samples=len(nodes), pages_per_check=args.pages_per_check)
    rows: list[dict] = []
    train_seconds, check_seconds = [], []  # per node-round, per checked contribution
    with tempfile.TemporaryDirectory(prefix="gradswarm-specificity-") as audit_dir:
        verifier = Verifier(
            run_id,
            Keypair.create_from_uri("//verifier"),
            spec.model.preset,
            corpus,
            excluded,
            spec.data.pages_per_round,
            spec.train.seq_len,
            AuditStore(Path(audit_dir)),
            settings,
        )
        for r in range(args.rounds):
            started = time.time()
            base_hash = state.state_hash()
            contributions = train_round(spec, run_id, r, corpus, excluded, codec, peers, state, base_hash, train_seconds)
            tick = time.perf_counter()
            records = {rec.subject: rec for rec in verifier.verify_round(r, state, base_hash, contributions)}
            check_seconds.append((time.perf_counter() - tick) / len(records))
            for h in nodes:
                row = row_of(r, h, records[h])
                rows.append(row)
                print(
                    f"round {r} {h:>11}: specificity {row['specificity']:+.3f} "
                    f"median {row['median_specificity']:+.3f} -> {row['verdict']} {row['reason']}",
                    flush=True,
                )
            # Weight 1 each: equal standing, so a manifest would weigh them alike (ManifestEntry's default).
            state = next_state(outer, state, [contributions[h].vector for h in nodes], [1.0] * len(nodes))
            print(f"round {r}: {time.time() - started:.0f} s", flush=True)

    summary = summarize(rows, args, settings, train_seconds, check_seconds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
