"""The running node: one asyncio service that walks the round protocol of DESIGN.md.

Per round r, from the shared state θ_r:
  train -> publish -> gather -> manifest (validators) -> apply -> announce.
Training runs in a worker thread so the node keeps serving payloads and
states to its peers while it computes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TypeVar

import torch

from node import adversary
from node.audit.serve import serve_audit
from node.audit.store import AuditStore
from node.chain import ChainError, ChainView, DevChain, Neuron
from node.checkpoint.state import (
    StateError,
    load_checkpoint,
    load_feedback,
    load_inner,
    max_state_bytes,
    parse_state,
    save_checkpoint,
    save_feedback,
    save_inner,
    serialize_state,
)
from node.config import NodeConfig, RunSpec
from node.data.corpus import Corpus
from node.data.sources import open_corpus
from node.fsutil import atomic_write
from node.memory import PeakRss
from node.outer.aggregate import robust_mean
from node.outer.contributions import ContributionPool, Gathered
from node.outer.gather import select_gather
from node.outer.optimizer import OuterOptimizer, OuterState
from node.swarm.binding import RENEW_BEFORE, signed_binding
from node.swarm.records import peers_key, round_key, validator_rejections, verdict_key
from node.swarm.swarm import Swarm
from node.swarm.transfer import TransferError
from node.trainer import params
from node.trainer.distributed import RankedTrainer, RankFailure, RankGroup
from node.trainer.inner import InnerTrainer, eval_loss
from node.trainer.model import node_model
from node.verifier.scores import Scoreboard
from node.verifier.verifier import Contribution, Verifier, VerifierSettings
from protocol import signing
from protocol.assignment import assign_pages, derive, eval_pages
from protocol.compression import ErrorFeedback, get_codec
from protocol.messages import (
    ContributionMeta,
    ManifestEntry,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.schedule import RoundSchedule
from protocol.signing import Signer

log = logging.getLogger(__name__)

M = TypeVar("M")

POLL_SECONDS = 0.5
MAX_VALIDATOR_SLOTS = 4
KEPT_ROUNDS = 3  # payloads and states kept in memory for peers that ask late
CHAIN_REFRESH_SECONDS = 12.0
PAYLOAD_FILE_ROUNDS = 32  # own payloads stay on disk this long (what was published, for later inspection)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def chain_genesis(chain: ChainView, start_block: int) -> float:
    """Wall-clock time of `start_block`: exact on the dev chain, estimated from the chain's block time elsewhere."""
    if isinstance(chain, DevChain):
        return chain.genesis_time + start_block * chain.block_time
    return time.time() - (chain.block() - start_block) * chain.block_time


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


class SwarmNode:
    def __init__(self, spec: RunSpec, config: NodeConfig, keypair: Signer, chain: ChainView, ranks: RankGroup | None = None):
        self.spec = spec
        self.config = config
        self.keypair = keypair
        self.hotkey = keypair.ss58_address
        self.chain = chain
        self.run_id = spec.run_id
        self.data_dir = Path(config.data_dir)
        self.checkpoint_path = self.data_dir / "state.safetensors"
        self.feedback_path = self.data_dir / "error_feedback.safetensors"
        self.inner_path = self.data_dir / "inner_optimizer.pt"
        self.device = ranks.device if ranks else resolve_device(config.device)
        self.rank_group = ranks  # torchrun: this is rank 0, the other ranks train with it (node/trainer/distributed.py)
        self.ranked: RankedTrainer | None = None
        self.schedule = RoundSchedule(
            genesis=chain_genesis(chain, spec.schedule.start_block), round_seconds=spec.schedule.round_seconds
        )
        self.codec = get_codec(spec.codec.codec_spec())
        self.outer = OuterOptimizer(lr=spec.outer.lr, momentum=spec.outer.momentum, nesterov=spec.outer.nesterov)
        self.feedback = ErrorFeedback()
        self.swarm = Swarm(
            self.run_id,
            chain,
            bootstrap=list(config.bootstrap),
            host=config.host,
            port=config.port,
            identity_path=self.data_dir / "p2p.key",
            round_now=lambda: self.schedule.round_at(time.time()),
        )
        self.contributions = ContributionPool(self.run_id, self.swarm, self._get, self.codec, spec.codec.name, self.schedule)
        self.states: dict[bytes, tuple[int, OuterState]] = {}  # state hash -> (round, state)
        self.corpus: Corpus
        self.state: OuterState
        self.state_hash = b""
        self._serialized: dict[bytes, bytes] = {}  # the one state most recently served
        self._serialize_lock = asyncio.Lock()
        self._neurons_cache: list[Neuron] = []
        self._neurons_read_at = float("-inf")
        self.audit = AuditStore(self.data_dir / "audit")
        self.scores = Scoreboard()
        self.adversary = config.adversary
        self._verifying: asyncio.Task | None = None
        self._verdicts: list[tuple[int, str, str]] = []  # (round, subject, verdict) not yet reported
        self._verify_seconds = 0.0
        self._unregistered_records = 0  # signed records from unregistered hotkeys that got past the DHT to us
        self.memory = PeakRss()
        self._stale_source: OuterState | None = None  # only the stale adversary uses it

    # ------------------------------------------------------------------ setup

    def _setup_compute(self) -> None:
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        self.corpus = open_corpus(self.spec.data, Path(self.config.corpus_cache or self.data_dir / "corpus"))
        self.eval_page_ids = eval_pages(self.run_id, self.corpus.num_pages, self.spec.data.eval_pages)
        self.excluded = frozenset(self.eval_page_ids)
        self.model = node_model(self.spec.model.preset, self.spec.model.seed, self.device, self.config.activation_checkpointing)
        self.numel = self.contributions.numel = params.numel(self.model)
        self._adopt(OuterState.fresh(params.flatten(self.model)), round_=0)
        try:
            saved = load_checkpoint(self.checkpoint_path, self.numel)
        except StateError as e:
            log.warning("ignoring the local checkpoint: %s", e)
            saved = None
        if saved is not None:
            self._adopt(*saved)
            log.info("resuming from the local checkpoint of round %d", saved[1])
        try:
            self.feedback.load_state_dict(load_feedback(self.feedback_path, self.numel))
        except (StateError, ValueError) as e:
            log.warning("ignoring the saved error-feedback residual: %s", e)
        t = self.spec.train
        if self.rank_group is not None:
            self.ranked = RankedTrainer(self.rank_group, self.model, t, self.config.parallel, self.corpus, self.data_dir)
            self.trainer = self.ranked.trainer
        else:
            self.trainer = InnerTrainer.from_spec(self.model, t, self.device)
            try:
                saved_inner = load_inner(self.inner_path)
                if saved_inner is not None:
                    self.trainer.load_state_dict(saved_inner)
            except (StateError, ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning("ignoring the saved inner optimizer state: %s", e)
        self.audit.write_spec(self.spec)
        self.verifier = Verifier(
            self.run_id, self.keypair, self.spec.model.preset, self.corpus, self.excluded,
            self.spec.data.pages_per_round, t.seq_len, self.audit, VerifierSettings(samples=self.config.verify_samples),
        )

    def _adopt(self, state: OuterState, round_: int) -> None:
        self.state = state
        self.state_hash = state.state_hash()
        self.state_round = round_
        self.states[self.state_hash] = (round_, state)
        for digest, (r, _) in list(self.states.items()):
            if r < round_ - KEPT_ROUNDS:
                del self.states[digest]

    async def _lookup(self, kind: str, digest: bytes) -> bytes | None:
        if kind == "payload":
            return self.contributions.revealed_payload(digest)
        held_state = self.states.get(digest)
        if held_state is None:
            return None
        async with self._serialize_lock:  # serialize each state once, however many peers ask
            if digest not in self._serialized:
                self._serialized = {digest: await asyncio.to_thread(serialize_state, held_state[1], held_state[0])}
            return self._serialized[digest]

    # ------------------------------------------------------------------ run

    async def run(self, rounds: int | None = None) -> None:
        """Take part in the run until `rounds` rounds have been completed (forever if None)."""
        await asyncio.to_thread(self._setup_compute)
        await self.swarm.start(self._lookup)
        watch_memory = asyncio.create_task(self.memory.watch(), name="peak-rss")
        await serve_audit(self.swarm.p2p, self.audit)
        log.info("node %s peer %s listening on %s", self.hotkey, self.swarm.peer_id.hex()[:16], self.swarm.visible_maddrs())
        try:
            round_ = await self._join()
            last = None if rounds is None else rounds
            while last is None or round_ < last:
                try:
                    await self._round(round_)
                except (asyncio.CancelledError, KeyboardInterrupt, RankFailure):
                    raise
                except Exception:  # one bad round must not take the node down; the next one re-syncs
                    log.exception("round %d failed", round_)
                round_ += 1
        finally:
            watch_memory.cancel()
            await self.swarm.shutdown()

    async def _bind(self) -> None:
        """Commit our peer id on chain when it is not there (or about to expire): peers talk only to
        chain-bound peer ids. The short-lived DHT binding only says we are still online."""
        bindings = self.swarm.bindings
        await bindings.refresh()
        committed = bindings.committed(self.hotkey)
        if committed is None or committed.peer_id != self.swarm.peer_id or committed.expires_at < time.time() + RENEW_BEFORE:
            try:
                await asyncio.to_thread(self.chain.set_commitment, self.keypair, signed_binding(self.run_id, self.keypair, self.swarm.peer_id))
                bindings.forget()
            except ChainError as e:
                log.warning("could not commit our peer binding on chain: %s", e)
        binding = PeerBinding(
            run_id=self.run_id,
            hotkey=self.hotkey,
            peer_id=self.swarm.peer_id,
            expires_at=time.time() + 3 * self.schedule.round_seconds,
        )
        await self.swarm.put(signing.sign(binding, self.keypair), binding.expires_at)

    async def _get(self, key: str, kind: type[M]) -> list[M]:
        """`swarm.get`, minus records from hotkeys the chain does not know: the DHT validators should
        already have refused them, so any that arrive are counted in the round report."""
        found = await self.swarm.get(key, kind)
        registered = {n.hotkey for n in self._neurons()}
        kept = [m for m in found if m.hotkey in registered]  # type: ignore[attr-defined]
        if len(kept) < len(found):
            self._unregistered_records += len(found) - len(kept)
            log.warning("dropped %d records from unregistered hotkeys under %s", len(found) - len(kept), key)
        return kept

    async def _join(self) -> int:
        """The first round to take part in; late joiners first sync to the latest signed state."""
        await self._bind()
        current = max(0, self.schedule.round_at(time.time()))
        for back in range(current - 1, max(-1, current - 64), -1):
            manifest = await self._best_manifest(back)
            if manifest is None:
                continue  # a round without manifest left the state as it was
            if manifest.result_state_hash != self.state_hash:
                log.info("joining late: syncing to the state signed for round %d", back + 1)
                if not await self._sync(manifest, deadline=self.schedule.deadlines(current).end):
                    return current  # still out of sync: the round loop keeps trying
            break
        self._adopt(self.state, current)
        return current

    # ------------------------------------------------------------------ one round

    async def _round(self, r: int) -> None:
        d = self.schedule.deadlines(r)
        await sleep_until(d.start)
        await self._bind()
        report: dict = {"round": r, "hotkey": self.hotkey, "t_start": time.time()}
        served_before = dict(self.swarm.bytes_served)
        base_hash, base_state, had_base = self.state_hash, self.state, self.state_round == r

        if self.adversary == "copy" and self.state_round == r:
            stolen = await self._steal(r, d.gather_end)
            if stolen is not None:
                await self._publish(r, stolen)
        elif time.time() < d.train_end and self.state_round == r:
            started = time.time()
            loss, payload = await asyncio.to_thread(self._train_and_compress, r, d.train_end)
            report["train_seconds"] = round(time.time() - started, 3)
            report["train_loss"] = loss
            report["inner_steps"] = self.trainer.last_steps
            report["payload_bytes"] = len(payload)
            if time.time() < d.reveal:
                await self._publish(r, payload)
        else:
            log.warning("round %d: not training (state is for round %d, or too late)", r, self.state_round)

        manifest = await self._settle(r, d)
        report["manifest_entries"] = len(manifest.entries) if manifest else 0
        report["manifest_hotkeys"] = [e.hotkey for e in manifest.entries] if manifest else []
        report["manifest_signer"] = manifest.hotkey if manifest else None
        if manifest is None:
            if self.state_round == r:  # no manifest: θ_{r+1} = θ_r
                self._adopt(self.state, r + 1)
        elif manifest.base_state_hash == base_hash and self.state_round == r:
            await self._apply(r, manifest)
        if manifest is not None and self.state_hash != manifest.result_state_hash:
            report["resynced"] = await self._sync(manifest, deadline=d.end + self.schedule.round_seconds / 2)

        await self._announce(r + 1)
        if had_base and self.config.verify_samples and (self._verifying is None or self._verifying.done()):
            self._verifying = asyncio.create_task(self._verify(r, base_state, base_hash))
        if self.config.evaluate and self.state_round == r + 1:
            report["eval_loss"] = await asyncio.to_thread(self._evaluate)
        if self.ranked is not None:  # the outer update: every rank holds θ_{r+1}; also rank 0's heartbeat to them
            await asyncio.to_thread(self.ranked.hold, self.state.theta)
        report["state_hash"] = self.state_hash.hex()
        report["in_sync"] = manifest is None or self.state_hash == manifest.result_state_hash
        report["upload_payload_bytes"] = self.swarm.bytes_served["payload"] - served_before["payload"]
        report["upload_state_bytes"] = self.swarm.bytes_served["state"] - served_before["state"]
        report["verdicts"], self._verdicts = self._verdicts, []
        report["verify_seconds"], self._verify_seconds = round(self._verify_seconds, 3), 0.0
        await self._report_defences(report)
        if (r + 1) % self.config.weights_every == 0:
            await asyncio.to_thread(self._set_weights)
        if self.state_round == r + 1 and (r + 1) % self.config.checkpoint_every == 0:
            await asyncio.to_thread(save_checkpoint, self.checkpoint_path, self.state, r + 1)
            await asyncio.to_thread(save_feedback, self.feedback_path, self.feedback.state_dict())
            if self.ranked is None:  # under torchrun the moments live in the ranks (sharded with FSDP2): not saved yet
                await asyncio.to_thread(save_inner, self.inner_path, self.trainer.state_dict())
        report["t_end"] = time.time()
        self._record(report)
        self._forget_before(r - KEPT_ROUNDS)

    def _train_and_compress(self, r: int, deadline: float) -> tuple[float, bytes]:
        source = self.state
        if self.adversary == "stale":  # trains from the previous round's state, claims the current one
            source, self._stale_source = self._stale_source or self.state, self.state
        theta = source.theta.to(self.device)
        page_owner = adversary.training_hotkey(self.adversary, self.hotkey)
        pages = assign_pages(self.run_id, r, page_owner, self.corpus.num_pages, self.spec.data.pages_per_round, self.excluded)
        seed = int.from_bytes(derive(self.run_id, "train-seed", r, self.hotkey)[:8], "little")
        if self.ranked is None:
            params.load_flat(self.model, theta)
            loss = self.trainer.train(self.corpus.pages(pages), steps=self.spec.train.inner_steps, seed=seed, deadline=deadline)
            trained = params.flatten(self.model)
        else:  # every rank trains on its rows of the same batches; rank 0 gets the result
            loss, trained = self.ranked.train(source.theta, pages, seed, self.spec.train.inner_steps, deadline)
            trained = trained.to(self.device)
        delta = adversary.forge_delta(self.adversary, theta - trained, r)
        payload = self.feedback.step(delta, self.codec, beta=self.spec.codec.error_feedback_beta)
        return loss, payload

    async def _publish(self, r: int, payload: bytes) -> None:
        digest = hashlib.sha256(payload).digest()
        await asyncio.to_thread(atomic_write, self.data_dir / "payloads" / f"{r}-{digest.hex()}.bin", payload)
        meta = ContributionMeta(
            run_id=self.run_id,
            round=r,
            hotkey=self.hotkey,
            peer_id=self.swarm.peer_id,
            digest=digest,
            nbytes=len(payload),
            codec=self.spec.codec.name,
            base_state_hash=self.state_hash,
        )
        self.contributions.add_own(meta, payload)
        await self.swarm.put(signing.sign(meta, self.keypair), self.schedule.deadlines(r).end + self.schedule.round_seconds)

    async def _steal(self, r: int, deadline: float) -> bytes | None:
        """The copy adversary: republish the first other payload it can get, as its own."""
        while time.time() < deadline:
            gathered = await self.contributions.poll(r)
            for hotkey in sorted(gathered.vectors):
                if hotkey != self.hotkey and gathered.metas[hotkey].digest in self.contributions.payloads:
                    return self.contributions.payloads[gathered.metas[hotkey].digest][1]
            await asyncio.sleep(POLL_SECONDS)
        return None

    # ------------------------------------------------------------------ gather

    # ------------------------------------------------------------------ verify

    async def _verify(self, r: int, base: OuterState, base_hash: bytes) -> None:
        """Check a sample of round r's contributions against θ_r while the next round trains."""
        gathered = self.contributions.rounds.get(r)
        if gathered is None:
            return
        payloads = self.contributions.payloads
        contributions = {
            h: Contribution(gathered.metas[h], v, payloads[gathered.metas[h].digest][1])
            for h, v in gathered.vectors.items()
            if gathered.metas[h].digest in payloads
        }
        started = time.time()
        records = await asyncio.to_thread(self.verifier.verify_round, r, base, base_hash, contributions)
        self._verify_seconds += time.time() - started
        for record in records:
            self.scores.add(record)
            self._verdicts.append((r, record.subject, record.verdict))
            await self.swarm.put(record, self.schedule.deadlines(r).end + 8 * self.schedule.round_seconds)
        await asyncio.to_thread(self.audit.prune, r - self.config.audit_rounds)
        self.scores.forget_before(r - self.config.audit_rounds)

    async def _collect_verdicts(self, r: int, subjects: list[str]) -> None:
        """Records of the last rounds from validators (their stake vouches for them) into the scoreboard."""
        trusted = {n.hotkey for n in self._validators()}
        keys = [verdict_key(self.run_id, past, subject) for past in (r - 1, r - 2) if past >= 0 for subject in subjects]
        for found in await asyncio.gather(*(self._get(key, VerificationRecord) for key in keys)):
            for record in found:
                if record.hotkey in trusted and record.hotkey != self.hotkey:
                    self.scores.add(record)

    def _set_weights(self) -> None:
        """Validators put their scores on chain; weights decide who is worth gathering run-wide."""
        neurons = {n.hotkey: n for n in self._neurons()}
        me = neurons.get(self.hotkey)
        if me is None or not me.validator_permit:
            return
        scored = [(neurons[h].uid, self.scores.score(h)) for h in neurons if self.scores.known(h)]
        if not any(w > 0 for _, w in scored):
            return
        try:
            self.chain.set_weights(self.keypair, [u for u, _ in scored], [w for _, w in scored])
        except ChainError as e:
            log.warning("could not set weights: %s", e)

    # ------------------------------------------------------------------ manifest

    def _neurons(self) -> list[Neuron]:
        """The subnet's neurons, read at most once per CHAIN_REFRESH_SECONDS (a metagraph read is slow on a real chain)."""
        now = time.monotonic()
        if now - self._neurons_read_at > CHAIN_REFRESH_SECONDS:
            self._neurons_cache = self.chain.neurons()
            self._neurons_read_at = now
        return self._neurons_cache

    def _validators(self) -> list[Neuron]:
        """Permitted validators by stake rank: rank 0 signs first, the rest are backups."""
        permitted = [n for n in self._neurons() if n.validator_permit]
        return sorted(permitted, key=lambda n: (-n.stake, n.uid))[:MAX_VALIDATOR_SLOTS]

    async def _best_manifest(self, r: int) -> RoundManifest | None:
        manifests = await self._get(round_key(self.run_id, "manifest", r), RoundManifest)
        ranks = {n.hotkey: i for i, n in enumerate(self._validators())}
        valid = [m for m in manifests if m.round == r and m.hotkey in ranks]
        return min(valid, key=lambda m: ranks[m.hotkey], default=None)

    async def _settle(self, r: int, d) -> RoundManifest | None:
        """Gather until a manifest for round r exists (signing one ourselves when it is our turn)."""
        validators = self._validators()
        my_rank = next((i for i, n in enumerate(validators) if n.hotkey == self.hotkey), None)
        neurons = {n.hotkey: n for n in self._neurons()}
        while True:
            gathered = await self.contributions.poll(r)
            manifest = await self._best_manifest(r)
            if manifest is not None:
                return manifest
            now = time.time()
            if my_rank is not None and self.state_round == r:
                my_slot = self.schedule.manifest_slot(r, my_rank, len(validators))
                everyone_in = my_rank == 0 and await self._all_bound_peers_in(gathered)
                if now >= my_slot or everyone_in:
                    if gathered.vectors:
                        return await self._sign_manifest(r, gathered, neurons)
            if now >= d.end:
                return None
            await asyncio.sleep(POLL_SECONDS)

    async def _all_bound_peers_in(self, gathered: Gathered) -> bool:
        bindings = await self._get(peers_key(self.run_id), PeerBinding)
        live = {b.hotkey for b in bindings if b.expires_at > time.time() and await self.swarm.bindings.peer_of(b.hotkey) == b.peer_id}
        return bool(live) and live <= set(gathered.vectors)

    async def _sign_manifest(self, r: int, gathered: Gathered, neurons: dict[str, Neuron]) -> RoundManifest:
        candidates = {h: neurons[h] for h in gathered.vectors if h in neurons}
        await self._collect_verdicts(r, list(candidates))
        chosen = select_gather(self.scores, candidates, r, self.spec.outer.gather_size, self.spec.outer.probation_slots)
        entries = tuple(ManifestEntry(hotkey=h, digest=gathered.metas[h].digest, weight=w) for h, w in chosen.items())
        result = await asyncio.to_thread(self._aggregate, [gathered.vectors[h] for h in chosen], list(chosen.values()))
        manifest = RoundManifest(
            run_id=self.run_id,
            round=r,
            hotkey=self.hotkey,
            base_state_hash=self.state_hash,
            entries=entries,
            result_state_hash=result.state_hash(),
        )
        manifest = signing.sign(manifest, self.keypair)
        await self.swarm.put(manifest, self.schedule.deadlines(r).end + 4 * self.schedule.round_seconds)
        log.info("round %d: signed manifest with %d contributions", r, len(entries))
        self._adopt(result, r + 1)
        return manifest

    # ------------------------------------------------------------------ apply / sync

    def _aggregate(self, vectors: list[torch.Tensor], weights: list[float]) -> OuterState:
        result = self.state.clone()
        self.outer.step(result, robust_mean(vectors, weights))
        return result

    async def _apply(self, r: int, manifest: RoundManifest) -> None:
        gathered = self.contributions.round(r)
        vectors = []
        for entry in manifest.entries:
            vector = gathered.vectors.get(entry.hotkey)
            if vector is None or gathered.metas[entry.hotkey].digest != entry.digest:
                vector = await self.contributions.fetch_entry(entry, manifest.hotkey)
            if vector is None:
                log.warning("round %d: cannot obtain %s's payload; will sync the state instead", r, entry.hotkey)
                return
            vectors.append(vector)
        result = await asyncio.to_thread(self._aggregate, vectors, [e.weight for e in manifest.entries])
        self._adopt(result, r + 1)

    async def _sync(self, manifest: RoundManifest, deadline: float) -> bool:
        """Download the state the manifest's signer vouched for, from anyone who holds it."""
        target, round_ = manifest.result_state_hash, manifest.round + 1
        while time.time() < deadline:
            holders = [a.peer_id for a in await self._get(round_key(self.run_id, "state", round_), StateAnnouncement) if a.state_hash == target]
            signer_peer = await self.swarm.bindings.peer_of(manifest.hotkey)
            if signer_peer is not None:
                holders.insert(0, signer_peer)
            for peer in dict.fromkeys(holders):
                if peer == self.swarm.peer_id:
                    continue
                try:
                    data = await self.swarm.fetch(peer, "state", target, max_state_bytes(self.numel), timeout=60.0)
                    state = await asyncio.to_thread(parse_state, data, self.numel)
                except (TransferError, StateError) as e:
                    log.info("state sync from %s failed: %s", peer.hex()[:16], e)
                    continue
                if state.state_hash() == target:
                    self._adopt(state, round_)
                    log.info("synced to the signed state of round %d", round_)
                    return True
                log.warning("peer %s served a state whose hash is not the signed one", peer.hex()[:16])
            await asyncio.sleep(1.0)
        return False

    async def _announce(self, round_: int) -> None:
        if self.state_round != round_:
            return
        announcement = StateAnnouncement(
            run_id=self.run_id, round=round_, hotkey=self.hotkey, peer_id=self.swarm.peer_id, state_hash=self.state_hash
        )
        await self.swarm.put(signing.sign(announcement, self.keypair), self.schedule.deadlines(round_).end + self.schedule.round_seconds)

    # ------------------------------------------------------------------ bookkeeping

    async def _report_defences(self, report: dict) -> None:
        """What the Sybil defences refused so far (cumulative), and this node's memory."""
        report["unregistered_records"] = self._unregistered_records
        report["refused_streams"] = self.swarm.refused_streams
        report["records_only_pushed"] = self.swarm.inbox.filled  # records the DHT did not give us
        try:
            report["dht_rejections"] = await self.swarm.dht.run_coroutine(validator_rejections, return_future=True)
        except Exception as e:  # the DHT process is busy or gone: the report goes out without it
            log.debug("could not read the DHT validator's counts: %r", e)
        report["rss_bytes"] = await asyncio.to_thread(self.memory.sample)
        report["peak_rss_bytes"] = self.memory.peak

    def _evaluate(self) -> float:
        if self.ranked is not None:
            return self.ranked.evaluate(self.state.theta, self.eval_page_ids)
        params.load_flat(self.model, self.state.theta.to(self.device))
        pages = self.corpus.pages(self.eval_page_ids)
        return eval_loss(self.model, pages, self.spec.train.seq_len, self.spec.train.batch_size, self.device)

    def _record(self, report: dict) -> None:
        line = json.dumps(report, sort_keys=True)
        log.info("round %d: %s", report["round"], line)
        with open(self.data_dir / "rounds.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _forget_before(self, r: int) -> None:
        self.swarm.forget_before(r)
        self.contributions.forget_before(r)
        for path in (self.data_dir / "payloads").glob("*.bin"):
            round_text = path.name.split("-", 1)[0]
            if round_text.isdigit() and int(round_text) < r - PAYLOAD_FILE_ROUNDS:
                path.unlink(missing_ok=True)
