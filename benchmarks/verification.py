"""How well verification catches each kind of fake work, how often it fails honest work, and what it costs.

    .venv/bin/python benchmarks/verification.py --seeds 1 2 3 4 5            # ~8 min a seed on one core
    .venv/bin/python benchmarks/verification.py --seeds 1 --rounds 4 --kinds wrong-pages,stale   # a quick look
    # one half per core, then the summary of both:
    .venv/bin/python benchmarks/verification.py --seeds 1 2 3 --out a.json & \
    .venv/bin/python benchmarks/verification.py --seeds 4 5 --out b.json; wait
    .venv/bin/python benchmarks/verification.py --seeds --merge a.json b.json

A swarm simulated in one process with the default run spec. Every node is a
`Worker` of node/round/train.py, or one of the devnet's cheaters
(devnet/adversaries.py), and trains with the node's own code; a copier
republishes an honest node's payload of the last round (the
reveal embargo keeps this round's out of its reach). Each round every contribution nobody has
banned is aggregated (`next_state`, weight 1), as a manifest of all of them
would; every honest node is a validator with its own `Verifier` and
`Scoreboard`, and after each round every validator's records reach every
other's scoreboard (what `read_validators_verdicts` reads). Figures:

- detection: for each kind and seed, the first round with a failing verdict
  on the cheater and the round from which it is banned (out of manifests);
- honest failing verdicts, counted; and the false-positive rate estimated from
  the null distribution of honest records: the per-check `work_z` and per-round
  log alignment of honest nodes, fitted by a normal, give the chance that one
  verdict fails an honest node at the rule's thresholds; times the verdicts an
  honest node gets per round, the chance per node and round;
- cost: compute units (window forward passes; forward+backward = 3) of
  verification per round against the round's training (`verify_share`), and
  wall seconds on one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
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

from devnet.adversaries import WORKERS  # noqa: E402
from node.audit.store import AuditStore  # noqa: E402
from node.config import RunSpec  # noqa: E402
from node.data.sources import open_corpus  # noqa: E402
from node.outer.optimizer import OuterOptimizer, OuterState  # noqa: E402
from node.round.apply import next_state  # noqa: E402
from node.round.states import Base  # noqa: E402
from node.round.train import Worker  # noqa: E402
from node.trainer import params  # noqa: E402
from node.trainer.inner import InnerTrainer  # noqa: E402
from node.trainer.model import build_model  # noqa: E402
from node.verifier.checks import Tolerances  # noqa: E402
from node.verifier.scores import Scoreboard  # noqa: E402
from node.verifier.verifier import Contribution, Verifier, VerifierSettings  # noqa: E402
from protocol.assignment import derive, eval_pages  # noqa: E402
from protocol.compression import ErrorFeedback, get_codec  # noqa: E402
from protocol.messages import ContributionMeta  # noqa: E402
from protocol.schedule import Deadlines  # noqa: E402

KINDS = (
    "wrong-pages",
    "forged-wrong-pages",
    "stale",
    "forged-stale",
    "noise",
    "scaled",
    "few-steps",
    "half-steps",
    "negated",
    "shrunk",
    "late",
    "copy",
)


def normal_tail(x: float) -> float:
    """P(N(0, 1) < x)."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


class Sim:
    """One seed's swarm."""

    def __init__(self, seed: int, honest: int, kinds: list[str], root: Path):
        self.spec = RunSpec()
        self.run_id = derive("benchmark-verification", seed)
        self.corpus = open_corpus(self.spec, Path(tempfile.gettempdir()) / "gradswarm-corpus")
        self.excluded = frozenset(eval_pages(self.run_id, self.corpus.num_pages, self.spec.data.eval_pages))
        self.codec = get_codec(self.spec.codec.codec_spec())
        self.outer = OuterOptimizer.from_spec(self.spec)
        keys = {f"honest{i}": Keypair.create_from_uri(f"//bench/{seed}/honest{i}") for i in range(honest)}
        keys.update({k: Keypair.create_from_uri(f"//bench/{seed}/{k}") for k in kinds})
        self.name = {kp.ss58_address: n for n, kp in keys.items()}
        self.hotkey = {n: kp.ss58_address for n, kp in keys.items()}
        self.workers = {n: self._worker(n) for n in keys if n != "copy"}
        self.state = OuterState.fresh(
            params.flatten(build_model(self.spec.model.preset, self.spec.model.seed, vocab_size=self.spec.model.vocab_size))
        )
        self.validators = {}
        for i in range(honest):
            n = f"honest{i}"
            store = AuditStore(root / n)
            store.write_spec(self.spec)
            verifier = Verifier(
                self.run_id, keys[n], self.spec.model, self.corpus, self.excluded,
                self.spec.data.pages_per_round, self.spec.train, self.outer, store, VerifierSettings(),
            )  # fmt: skip
            self.validators[n] = (verifier, Scoreboard())
        self.previous: dict[str, Contribution] = {}

    def _worker(self, name: str) -> Worker:
        model = build_model(self.spec.model.preset, self.spec.model.seed, vocab_size=self.spec.model.vocab_size)
        kind = WORKERS.get(name, Worker) if not name.startswith("honest") else Worker
        return kind(
            self.run_id, self.hotkey[name], self.spec, self.corpus, self.excluded, model,
            InnerTrainer.from_spec(model, self.spec.train, "cpu"), None, torch.device("cpu"), ErrorFeedback(), self.codec,
        )  # fmt: skip

    def train(self, r: int) -> tuple[dict[str, Contribution], dict[str, float]]:
        far = time.time() + 1e6
        deadlines = Deadlines(far, far, far, far, far, far)
        base = Base(r, self.state, self.state.state_hash())
        contributions, seconds = {}, {}
        for name, worker in self.workers.items():
            tick = time.perf_counter()
            work = asyncio.run(worker.work(r, base, deadlines))
            seconds[name] = time.perf_counter() - tick
            if work is not None:
                contributions[self.hotkey[name]] = self._contribution(r, name, work.payload, work.first_losses, base.hash)
        victim = self.previous.get(self.hotkey["honest0"])
        if "copy" in self.hotkey and victim is not None:  # payloads are embargoed until the reveal: only last round's can be copied
            contributions[self.hotkey["copy"]] = self._contribution(r, "copy", victim.payload, victim.meta.first_losses, base.hash)
        return contributions, seconds

    def _contribution(self, r: int, name: str, payload: bytes, first: tuple[float, ...], base_hash: bytes) -> Contribution:
        meta = ContributionMeta(
            run_id=self.run_id, round=r, hotkey=self.hotkey[name], peer_id=b"", digest=hashlib.sha256(payload).digest(),
            nbytes=len(payload), codec=self.spec.codec.name, trained_from=base_hash, first_losses=first,
        )  # fmt: skip
        return Contribution(meta, self.codec.decode(payload, self.state.theta.numel()), payload)

    def verify(self, r: int, contributions: dict[str, Contribution]) -> tuple[list, dict[str, float], dict[str, int]]:
        beacon = derive("beacon", self.run_id, r)
        records, seconds, units = [], {}, {}
        base_hash = self.state.state_hash()
        for name, (verifier, scores) in self.validators.items():
            before, tick = verifier.units, time.perf_counter()
            records += verifier.verify_round(r, self.state, base_hash, beacon, contributions, self.previous, scores)
            seconds[name], units[name] = time.perf_counter() - tick, verifier.units - before
        for _, scores in self.validators.values():
            for record in records:
                scores.add(record)
        return records, seconds, units

    def step(self, r: int, contributions: dict[str, Contribution]) -> list[str]:
        """Aggregate every contribution no validator has banned; the names aggregated."""
        chosen = [h for h in sorted(contributions) if not any(scores.banned(h, r + 1) for _, scores in self.validators.values())]
        self.state = next_state(self.outer, self.state, [contributions[h].vector for h in chosen], [1.0] * len(chosen), r)
        self.previous = contributions
        return [self.name[h] for h in chosen]


def run_seed(seed: int, rounds: int, honest: int, kinds: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="gradswarm-verification-") as root:
        sim = Sim(seed, honest, kinds, Path(root))
        rows, cost = [], []
        train_units = 3 * sim.spec.train.inner_steps * sim.spec.train.batch_size
        for r in range(rounds):
            started = time.time()
            contributions, train_seconds = sim.train(r)
            records, verify_seconds, units = sim.verify(r, contributions)
            for rec in records:
                metrics = {m.name: m.value for m in rec.metrics}
                rows.append(
                    {
                        "round": r, "verifier": sim.name[rec.hotkey], "subject": sim.name[rec.subject], "verdict": rec.verdict,
                        "reason": rec.reason, "work_z": metrics.get("work_z"), "log_alignment": math.log(metrics["alignment"]) if metrics["alignment"] > 0 and metrics["alignment_judged"] else None,
                        "work_checks": metrics["work_checks"], "work_evidence": metrics["work_evidence"], "alignment_rounds": metrics["alignment_rounds"],
                    }
                )  # fmt: skip
            for name in units:
                cost.append({"round": r, "verifier": name, "verify_share": units[name] / train_units,
                             "wall_share": verify_seconds[name] / train_seconds[name]})  # fmt: skip
            aggregated = sim.step(r, contributions)
            failed = sorted({sim.name[rec.subject] for rec in records if rec.verdict == "fail"})
            print(f"seed {seed} round {r}: {time.time() - started:.0f} s, aggregated {len(aggregated)}, failed {failed}", flush=True)
        return {"seed": seed, "rows": rows, "cost": cost, "kinds": kinds}


def _honest_fits(rows: list[dict], key: str) -> tuple[float, float, float, float]:
    """(pooled mean, within-node sd, lowest per-node mean, highest per-node |mean|) of an honest statistic."""
    by_node: dict[str, list[float]] = {}
    for row in rows:
        if row[key] is not None:
            by_node.setdefault(row["subject"], []).append(row[key])
    values = [v for vs in by_node.values() for v in vs]
    within = [v - statistics.fmean(vs) for vs in by_node.values() for v in vs]
    means = [statistics.fmean(vs) for vs in by_node.values()]
    return statistics.fmean(values), statistics.pstdev(within), min(means), max(abs(m) for m in means)


def within_round_correlation(rows: list[dict]) -> float:
    """The intraclass correlation of work_z among the checks of one subject in one round: they read
    the same pages, so they are not independent evidence."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        if row["work_z"] is not None:
            groups.setdefault((row["seed"], row["round"], row["subject"]), []).append(row["work_z"])
    multi = [v for v in groups.values() if len(v) >= 2]
    if not multi:
        return 0.0
    within = statistics.fmean(statistics.variance(v) for v in multi)
    total = statistics.variance([x for v in multi for x in v])
    return max(0.0, 1.0 - within / total) if total > 0 else 0.0


def false_positive_rates(honest_rows: list[dict], tol: Tolerances, max_checks: int = 16, max_rounds: int = 8) -> dict:
    """The chance that one verdict fails an honest node, from normal fits of the honest records.

    Work: after m checks the evidence is a sum of m log-likelihood ratios, each normal with mean
    work_effect * (mu - work_effect / 2) and sd work_effect * sd; the verdict fails when the sum is
    at most -work_evidence. Evaluated at the lowest per-node mean seen (the worst honest node),
    with the variance of the sum inflated for checks of one round that read the same pages (up to
    `per_round` checks a round, intraclass correlation measured), which the test itself ignores.
    Alignment: the running mean of k log alignments of a node whose bias is the largest seen.
    """
    mu, sd, low, _ = _honest_fits(honest_rows, "work_z")
    a_mu, a_sd, _, a_bias = _honest_fits(honest_rows, "log_alignment")
    icc = within_round_correlation(honest_rows)
    per_round = max(
        len([r for r in honest_rows if (r["seed"], r["round"], r["subject"]) == key])
        for key in {(r["seed"], r["round"], r["subject"]) for r in honest_rows}
    )
    inflation = math.sqrt(1 + (per_round - 1) * icc)
    e = tol.work_effect
    work = {
        m: normal_tail((-tol.work_evidence - m * e * (low - e / 2)) / (e * sd * inflation * math.sqrt(m))) for m in range(1, max_checks + 1)
    }
    alignment = {
        k: normal_tail((a_bias - tol.alignment_limit(k)) / (a_sd / math.sqrt(k)))
        + normal_tail((-tol.alignment_limit(k) - a_bias) / (a_sd / math.sqrt(k)))
        for k in range(tol.min_alignment_rounds, max_rounds + 1)
    }
    return {
        "work_z_within_round_correlation": icc, "checks_per_round_at_most": per_round,
        "work_z_mean": mu, "work_z_sd_within_node": sd, "work_z_lowest_node_mean": low,
        "log_alignment_mean": a_mu, "log_alignment_sd_within_node": a_sd, "log_alignment_largest_node_bias": a_bias,
        "work_per_verdict_by_checks": work, "alignment_per_verdict_by_rounds": alignment,
        "per_verdict_worst": max(work.values()) + max(alignment.values()),
    }  # fmt: skip


def summarize(seeds: list[dict], tol: Tolerances) -> dict:
    kinds = seeds[0]["kinds"]
    detection = {}
    for kind in kinds:
        firsts = [
            min((row["round"] for row in s["rows"] if row["subject"] == kind and row["verdict"] == "fail"), default=None) for s in seeds
        ]
        detection[kind] = {"first_fail_round": firsts, "caught_by_round_4": sum(f is not None and f <= 4 for f in firsts) / len(firsts)}
    honest_rows = [{**row, "seed": s["seed"]} for s in seeds for row in s["rows"] if row["subject"].startswith("honest")]
    fpr = false_positive_rates(honest_rows, tol)
    nodes = len({row["subject"] for row in honest_rows}) or 1
    rounds = max(len({c["round"] for c in s["cost"]}) for s in seeds)
    verdicts_per_node_round = len(honest_rows) / (nodes * rounds * len(seeds))
    return {
        "seeds": [s["seed"] for s in seeds],
        "detection": detection,
        "honest_failing_verdicts": sum(row["verdict"] == "fail" for row in honest_rows),
        "honest_verdicts": len(honest_rows),
        "false_positive": fpr,
        "verdicts_per_honest_node_round": verdicts_per_node_round,
        "fpr_per_node_round": fpr["per_verdict_worst"] * verdicts_per_node_round,
        "cheater_work_z": {
            k: [row["work_z"] for s in seeds for row in s["rows"] if row["subject"] == k and row["work_z"] is not None] for k in kinds
        },
        "verify_share": {
            "mean": statistics.fmean(c["verify_share"] for s in seeds for c in s["cost"]),
            "max": max(c["verify_share"] for s in seeds for c in s["cost"]),
        },
        "verify_wall_share_median": statistics.median(c["wall_share"] for s in seeds for c in s["cost"]),
    }


def plot(seeds: list[dict], summary: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = {"honest": [r["work_z"] for s in seeds for r in s["rows"] if r["subject"].startswith("honest") and r["work_z"] is not None]}
    groups.update({k: v for k, v in summary["cheater_work_z"].items() if v})
    left.boxplot(list(groups.values()), tick_labels=list(groups))
    left.axhline(0, color="grey", lw=0.5)
    left.set_ylabel("work_z per check")
    left.set_title("work on the assigned pages, per check")
    plt.setp(left.get_xticklabels(), rotation=60, ha="right")
    kinds = list(summary["detection"])
    never = max(len({c["round"] for c in s["cost"]}) for s in seeds)  # not caught within the run
    caught = [statistics.fmean([f if f is not None else never for f in summary["detection"][k]["first_fail_round"]]) for k in kinds]
    right.bar(kinds, caught)
    right.set_ylabel(f"first failing round ({never} = not within the run)")
    right.set_title("detection round by kind (mean over seeds)")
    plt.setp(right.get_xticklabels(), rotation=60, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5], help="none with --merge: only summarize")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--honest", type=int, default=4)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--out", default="benchmarks/results/verification.json")
    ap.add_argument("--merge", nargs="*", default=[], metavar="JSON", help="add the seeds of earlier outputs to the summary")
    args = ap.parse_args()
    torch.set_num_threads(1)
    kinds = [k for k in args.kinds.split(",") if k]
    seeds = [run_seed(seed, args.rounds, args.honest, kinds) for seed in args.seeds]
    for extra in args.merge:  # seeds run elsewhere (another core) with the same options
        seeds += json.loads(Path(extra).read_text())["seeds"]
    summary = summarize(seeds, VerifierSettings().tolerances)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "seeds": seeds}, indent=2))
    plotted = plot(seeds, summary, out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}" + (f" and {out.with_suffix('.png')}" if plotted else " (no plot: pip install matplotlib)"))


if __name__ == "__main__":
    main()
