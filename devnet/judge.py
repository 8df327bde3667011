"""Judging a demo from the nodes' round reports: summary.json, and a non-zero exit when the swarm failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from statistics import mean, median

from node.config import RunSpec
from node.fsutil import atomic_write
from node.round.report import RoundReport, read_reports

BOOTSTRAPS = 2


def print_round(r: int, row: list[RoundReport]) -> None:
    losses = [x.train_loss for x in row if x.train_loss is not None]
    sent = sum(x.upload_payload_bytes + x.upload_state_bytes for x in row)
    print(
        f"{r:>5} {mean(losses) if losses else float('nan'):>10.4f} "
        f"{row[0].eval_loss if row[0].eval_loss is not None else float('nan'):>9.4f} {row[0].manifest_entries:>8} {sent:>10}",
        flush=True,
    )


def verdict_counts(logs: list[dict[int, RoundReport]]) -> dict[str, dict[str, int]]:
    """Per subject, the verdicts recorded in the given nodes' round logs."""
    counts: dict[str, dict[str, int]] = {}
    for log in logs:
        for report in log.values():
            for _round, subject, verdict in report.verdicts:
                counts.setdefault(subject, {"pass": 0, "fail": 0})[verdict] += 1
    return counts


def excluded_from(hotkey: str, log: dict[int, RoundReport], rounds: int) -> int | None:
    """The first round from which `hotkey` was in no manifest any more (None: still in the last one)."""
    last_in = max((r for r, report in log.items() if hotkey in report.manifest_hotkeys), default=-1)
    return last_in + 1 if last_in + 1 < rounds else None


def verify_wall_share(log: dict[int, RoundReport]) -> float | None:
    """Wall seconds a node spent verifying per second it spent training (both share its cores);
    None for a node that never trained (the copy adversary)."""
    train = sum(x.train_seconds or 0.0 for x in log.values())
    return round(sum(x.verify_seconds for x in log.values()) / train, 3) if train > 1.0 else None


def verify_shares(log: dict[int, RoundReport]) -> list[float]:
    """The node's per-round verify compute shares (rounds that did not report one left out)."""
    return [x.verify_share for _, x in sorted(log.items()) if x.verify_share is not None]


def min_inner_steps(log: dict[int, RoundReport]) -> int | None:
    """The fewest inner steps the node took in a round it trained (None: it never trained)."""
    return min((x.inner_steps for x in log.values() if x.inner_steps is not None), default=None)


def compute_utilization(log: dict[int, RoundReport]) -> float | None:
    """Median over the rounds the node trained of its seconds in inner steps per second of round."""
    shares = [x.compute_utilization for x in log.values() if x.compute_utilization is not None]
    return round(median(shares), 4) if shares else None


def efficiency(logs: list[dict[int, RoundReport]], spec: RunSpec, rounds: int, tokens_per_second_alone: float | None) -> dict:
    """How busy the nodes kept their cores, and the swarm's tokens per second against one process alone."""
    tokens = {log[min(log)].hotkey: sum(x.tokens_trained or 0 for x in log.values()) for log in logs if log}
    swarm = sum(tokens.values()) / (rounds * spec.schedule.round_seconds)
    return {
        "overlap": spec.schedule.overlap,
        "round_seconds": spec.schedule.round_seconds,
        "inner_steps": spec.train.inner_steps,
        "pages_per_round": spec.data.pages_per_round,
        "compute_utilization": {log[min(log)].hotkey: compute_utilization(log) for log in logs if log},
        "tokens_trained": tokens,
        "swarm_tokens_per_second": round(swarm, 1),
        "tokens_per_second_alone": round(tokens_per_second_alone, 1) if tokens_per_second_alone else None,
    }


def failing_verdicts_on(logs: list[dict[int, RoundReport]], subjects: set[str]) -> int:
    """How many 'fail' verdicts the given nodes' logs record about any of `subjects`."""
    return sum(1 for log in logs for x in log.values() for _r, subject, verdict in x.verdicts if verdict == "fail" and subject in subjects)


def sybil_summary(logs: list[dict[int, RoundReport]], report_path: Path) -> dict:
    """What the honest nodes took from the Sybils (should be nothing), from their round reports.

    Accepted: signed records from unregistered hotkeys that got past the DHT
    validators into a node's logic. Aggregated: (round, Sybil hotkey) pairs
    named in any manifest a node logged. Rejected and refused: what the DHT
    validators and the stream handlers turned away (cumulative per node);
    pushes taken: forged records an honest node's inbox took from a Sybil.
    """
    report = json.loads(report_path.read_text()) if report_path.exists() else {"hotkeys": []}
    sybils = set(report["hotkeys"])
    last = [log[max(log)] for log in logs if log]
    return {
        "sybils": len(sybils),
        "sybil_records_accepted": sum(x.unregistered_records for x in last),
        "sybil_contributions_aggregated": len({(r, h) for log in logs for r, x in log.items() for h in x.manifest_hotkeys if h in sybils}),
        "sybil_records_rejected_by_validators": sum((x.dht_rejections or {}).get("unregistered", 0) for x in last),
        "sybil_streams_refused": sum(x.refused_streams for x in last),
        "sybil_fetches_served": report.get("fetches_served", 0),
        "sybil_pushes_taken": report.get("pushes_taken", 0),
        "sybil_report": report,
    }


def judge(
    spec: RunSpec,
    configs: list[Path],
    peers: int,
    rounds: int,
    out: Path,
    wall: float,
    codes: list,
    late: bool,
    cheaters: list[str],
    bootstraps_stopped: list[dict] | None = None,
    ranks_per_node: int = 1,
    sybil_report: Path | None = None,
    honest: int | None = None,
    seed: int | None = None,
    tokens_per_second_alone: float | None = None,
    pages: dict[str, str] | None = None,
) -> int:
    """Write summary.json; non-zero exit when the swarm did not do its job.

    `peers` counts every node, `honest` the honest ones (they come first in `configs`; default: all
    but the cheaters). A late joiner is judged on what it can do: be in the swarm at the end with
    the same state. With cheaters, every one must be excluded and no honest node may fail a check.
    """
    from node.trainer import params
    from node.trainer.model import build_model

    logs = [read_reports(p.parent / "rounds.jsonl") for p in configs]
    on_time = logs[:-1] if late else logs
    completed = sum(1 for r in range(rounds) if all(r in log for log in on_time) and (rounds - 1) in logs[-1])
    final = {log[max(log)].hotkey: log[max(log)].state_hash for log in logs if log}
    payload_uploads = [log[r].upload_payload_bytes for log in logs for r in log]
    payload_sizes = [log[r].payload_bytes for log in logs for r in log if log[r].payload_bytes is not None]
    state_uploads = [log[r].upload_state_bytes for log in logs for r in log]
    dense = 4 * params.numel(build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size))
    honest = peers - len(cheaters) if honest is None else honest
    honest_hotkeys = {x.hotkey for log in logs[:honest] for x in log.values()}
    shares = {log[min(log)].hotkey: verify_shares(log) for log in logs if log}
    summary = {
        "seed": seed,
        "peers": peers,
        "honest": honest,
        "rounds_completed": completed,
        "eval_loss": [logs[0][r].eval_loss for r in sorted(logs[0])] if logs else [],
        "final_state_hashes": final,
        "upload_bytes_per_peer_round": mean(payload_uploads) if payload_uploads else 0.0,
        "payload_bytes_per_peer_round": mean(payload_sizes) if payload_sizes else 0.0,
        "state_sync_bytes_per_peer_round": mean(state_uploads) if state_uploads else 0.0,
        "dense_fp32_bytes": dense,
        "codec": spec.codec.name,
        "rounds_with_manifest": sum(1 for r in logs[0].values() if r.manifest_entries >= 2) if logs else 0,
        "state_syncs": sum(1 for log in logs for r in log if log[r].resynced),
        # Only the honest nodes' verdicts count (every honest node is a validator; a cheater can sign
        # any verdict it likes about anyone); every node's verdicts, cheaters' included, are in verdicts_all.
        "verdicts": verdict_counts(logs[:honest]),
        "verdicts_all": verdict_counts(logs),
        "failing_verdicts_on_honest": failing_verdicts_on(logs[:honest], honest_hotkeys),
        "adversaries": cheaters,
        "excluded_from_round": {h: excluded_from(h, logs[0] if logs else {}, rounds) for h in cheaters},
        # verifying compute / training compute per round (window forward+backward = 3 forwards): the worst round, the mean
        "verify_share": {h: max(v) if v else None for h, v in shares.items()},
        "verify_share_mean": {h: round(mean(v), 4) if v else None for h, v in shares.items()},
        "verify_wall_share": {log[min(log)].hotkey: verify_wall_share(log) for log in logs if log},
        "min_inner_steps": {log[min(log)].hotkey: min_inner_steps(log) for log in logs if log},
        "node_exit_codes": codes,
        "bootstraps": BOOTSTRAPS,
        "bootstraps_stopped": bootstraps_stopped or [],  # [{bootstrap, peer_id, round}]: round is the first without it
        "wall_seconds": round(wall, 1),
        # node -> its status page (/status, /metrics, /healthz under it); bootstrap -> where its /metrics and /healthz are
        "status_pages": pages or {},
    }
    if ranks_per_node > 1:  # every rank of every node wrote the state hash of the weights it holds at the end
        ranks = {p.parent.name: sorted(json.loads(f.read_text())["state_hash"] for f in p.parent.glob("ranks/rank*.json")) for p in configs}
        summary["ranks_per_node"] = ranks_per_node
        summary["rank_state_hashes"] = ranks
        summary["rank_state_hashes_agree"] = all(len(h) == ranks_per_node for h in ranks.values()) and {
            h for hs in ranks.values() for h in hs
        } == set(final.values())
    # Records some node read only because a peer pushed them: the DHT alone would have lost them.
    summary["records_only_pushed"] = sum(log[max(log)].records_only_pushed for log in logs if log)
    summary["peak_rss_bytes"] = {log[min(log)].hotkey: max(x.peak_rss_bytes for x in log.values()) for log in logs if log}
    summary.update(efficiency(logs, spec, rounds, tokens_per_second_alone))
    if sybil_report is not None:
        summary.update(sybil_summary(logs, sybil_report))
    atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
    problems = []
    if sybil_report is not None and (
        summary["sybil_records_accepted"]
        or summary["sybil_contributions_aggregated"]
        or summary["sybil_fetches_served"]
        or summary["sybil_pushes_taken"]
    ):
        problems.append("records, contributions, pushes or fetches of unregistered Sybils got through")
    if completed < rounds:
        problems.append(f"only {completed}/{rounds} rounds completed by every node")
    if len(set(final.values())) != 1 or len(final) != peers:
        problems.append("final state hashes differ between nodes")
    if summary["rounds_with_manifest"] < rounds / 2:
        problems.append(f"only {summary['rounds_with_manifest']}/{rounds} rounds merged contributions from 2+ nodes")
    if any(c != 0 for c in codes):
        problems.append(f"node exit codes {codes}")
    if summary.get("rank_state_hashes_agree") is False:
        problems.append("the ranks of the nodes do not all hold the final state")
    if cheaters:
        kept = [h for h, r in summary["excluded_from_round"].items() if r is None]
        if kept:
            problems.append(f"adversaries never excluded: {', '.join(kept)}")
        if summary["failing_verdicts_on_honest"]:
            problems.append(f"{summary['failing_verdicts_on_honest']} failing verdicts on honest nodes")
    evals = [e for e in summary["eval_loss"] if e is not None]
    print(f"summary: {out / 'summary.json'}")
    if evals:
        print(
            f"eval loss {evals[0]:.4f} -> {evals[-1]:.4f} ({evals[-1] / evals[0]:.2f}x); "
            f"upload {summary['upload_bytes_per_peer_round']:.0f} B/peer/round vs dense fp32 {dense} B; "
            f"{summary['wall_seconds']} s"
        )
    busy = [u for u in summary["compute_utilization"].values() if u is not None]
    if busy:
        print(
            f"compute utilization {min(busy):.3f}-{max(busy):.3f} (median of rounds, per node); swarm "
            f"{summary['swarm_tokens_per_second']:.0f} tokens/s, one process alone {summary['tokens_per_second_alone'] or 0:.0f}"
        )
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0
