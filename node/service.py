"""The running node: its parts, built from the run spec and the node config, and the round loop.

What happens in a round is node/round/engine.py; this module only builds what
the phases work with and keeps taking part, round after round. Training runs
in worker threads, so the node keeps serving payloads and states to its peers
while it computes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import torch

from node.audit.serve import serve_audit
from node.audit.store import AuditStore
from node.chain import ChainView
from node.chain.clock import run_schedule
from node.checkpoint.state import StateError, load_checkpoint, load_feedback, load_inner
from node.config import NodeConfig, RunSpec
from node.data.sources import open_corpus
from node.memory import PeakRss
from node.outer.contributions import ContributionPool
from node.outer.optimizer import OuterOptimizer, OuterState
from node.round import engine
from node.round.apply import apply_manifest
from node.round.collect import Collector
from node.round.finish import LocalFiles
from node.round.join import join
from node.round.states import Base, StateBook
from node.round.sync import fetch_signed_state
from node.round.train import Worker
from node.round.verify import Verification
from node.status import server as status_server
from node.status.live import StatusBoard
from node.swarm.board import Board
from node.swarm.presence import Presence
from node.swarm.swarm import Swarm
from node.trainer import params
from node.trainer.distributed import RankedTrainer, RankFailure, RankGroup
from node.trainer.inner import InnerTrainer, eval_loss
from node.trainer.model import node_model
from node.verifier.scores import Scoreboard
from node.verifier.verifier import Verifier, VerifierSettings
from protocol.assignment import eval_pages
from protocol.compression import ErrorFeedback, get_codec
from protocol.messages import RoundManifest
from protocol.signing import Signer

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SwarmNode:
    """`worker_class` decides how the node does its own work; the product only ever uses the honest Worker."""

    def __init__(
        self,
        spec: RunSpec,
        config: NodeConfig,
        keypair: Signer,
        chain: ChainView,
        ranks: RankGroup | None = None,
        worker_class: type[Worker] = Worker,
    ):
        self.spec, self.config, self.keypair, self.chain = spec, config, keypair, chain
        self.hotkey = keypair.ss58_address
        self.run_id = spec.run_id
        self.files = LocalFiles(Path(config.data_dir))
        self.device = ranks.device if ranks else resolve_device(config.device)
        self.rank_group = ranks  # torchrun: this is rank 0, the other ranks train with it (node/trainer/distributed.py)
        self.ranked: RankedTrainer | None = None
        self.worker_class = worker_class
        self.schedule = run_schedule(spec, chain)
        self.training = asyncio.Lock()  # the model, inner optimizer and residual: one round's training at a time
        self.codec = get_codec(spec.codec.codec_spec())
        self.outer = OuterOptimizer.from_spec(spec)  # [outer] under the [plan]: round r's step takes round r's lr
        self.feedback = ErrorFeedback()
        self.swarm = Swarm(
            self.run_id,
            chain,
            bootstrap=list(config.bootstrap),
            host=config.host,
            port=config.port,
            identity_path=self.files.data_dir / "p2p.key",
            round_now=lambda: self.schedule.round_at(time.time()),
        )
        self.served_at_report = dict(self.swarm.bytes_served)  # what peers had fetched from us at the last round report
        self.board = Board(self.run_id, self.swarm, chain, keypair, self.schedule)
        self.presence = Presence(self.board, chain)
        self.pool = ContributionPool(self.run_id, self.swarm, self.board.read, self.codec, spec.codec.name, self.schedule)
        self.audit = AuditStore(self.files.data_dir / "audit")
        self.scores = Scoreboard()
        self.memory = PeakRss()
        self.status = StatusBoard(self)  # what [node] http serves (node/status/)

    def setup(self) -> None:
        """Corpus, model, θ (from the local checkpoint when there is one), trainer, verifier: the slow part of start-up."""
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        self.corpus = open_corpus(self.spec, Path(self.config.corpus_cache or self.files.data_dir / "corpus"))
        self.eval_page_ids = eval_pages(self.run_id, self.corpus.num_pages, self.spec.data.eval_pages)
        self.excluded = frozenset(self.eval_page_ids)
        m = self.spec.model
        self.model = node_model(m.preset, m.seed, self.device, self.config.activation_checkpointing, m.vocab_size)
        self.numel = self.pool.numel = params.numel(self.model)
        self.states = StateBook(OuterState.fresh(params.flatten(self.model)))
        self._resume()
        t = self.spec.train
        if self.rank_group is not None:
            self.ranked = RankedTrainer(self.rank_group, self.model, t, self.config.parallel, self.corpus, self.files.data_dir)
            self.trainer = self.ranked.trainer
        else:
            self.trainer = InnerTrainer.from_spec(self.model, t, self.device)
            try:
                saved_inner = load_inner(self.files.inner)
                if saved_inner is not None:
                    self.trainer.load_state_dict(saved_inner)
            except (StateError, ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning("ignoring the saved inner optimizer state: %s", e)
        if self.config.evaluate and self.ranked is None:  # its own model: evaluation runs while the next round trains
            self.eval_model = node_model(m.preset, m.seed, self.device, "off", m.vocab_size)
        self.audit.write_spec(self.spec)
        verifier = Verifier(
            self.run_id,
            self.keypair,
            self.spec.model,
            self.corpus,
            self.excluded,
            self.spec.data.pages_per_round,
            t,
            self.outer,
            self.audit,
            VerifierSettings(samples=self.config.verify_samples),
        )
        self.verification = Verification(verifier, self.pool, self.board, self.scores, self.audit, self.config.audit_rounds)
        self.collector = Collector(
            self.board, self.chain, self.pool, self.schedule, self.states, self.scores, self.verification, self.spec.outer, self.outer
        )
        self.worker = self.worker_class.build(self)

    def _resume(self) -> None:
        """θ and the error-feedback residual from the local checkpoint; damaged or foreign files are ignored."""
        try:
            saved = load_checkpoint(self.files.state, self.numel)
        except StateError as e:
            log.warning("ignoring the local checkpoint: %s", e)
            saved = None
        if saved is not None:
            self.states.adopt(*saved)
            log.info("resuming from the local checkpoint of round %d", saved[1])
        try:
            self.feedback.load_state_dict(load_feedback(self.files.feedback, self.numel))
        except (StateError, ValueError) as e:
            log.warning("ignoring the saved error-feedback residual: %s", e)

    async def serve(self, kind: str, digest: bytes) -> bytes | None:
        """What peers may fetch from us: revealed payloads, and the states we hold."""
        if kind == "payload":
            return self.pool.revealed_payload(digest)
        return await self.states.serialized(digest)

    async def run(self, rounds: int | None = None) -> None:
        """Take part in the run until `rounds` rounds have been completed (forever if None), serving the status view."""
        http = status_server.start(self.config.http, self.status)  # before setup: "starting" is worth seeing
        watch_status = asyncio.create_task(self.status.watch(), name="status")
        try:
            await self._take_part(rounds)
        finally:
            watch_status.cancel()
            if http is not None:
                http.stop()

    async def _take_part(self, rounds: int | None) -> None:
        await asyncio.to_thread(self.setup)
        await self.swarm.start(self.serve, lambda p2p: serve_audit(p2p, self.audit, self.states.serialized))
        watch_memory = asyncio.create_task(self.memory.watch(), name="peak-rss")
        log.info("node %s peer %s listening on %s", self.hotkey, self.swarm.peer_id.hex()[:16], self.swarm.visible_maddrs())
        running: set[asyncio.Task] = set()
        try:
            round_ = await join(self)
            self.status.joined(round_)
            while rounds is None or round_ < rounds:
                task = asyncio.create_task(self._round(round_), name=f"round-{round_}")
                running.add(task)
                task.add_done_callback(running.discard)
                # round r+1 starts when its window opens, whether or not round r's exchange is over
                await engine.sleep_until(self.schedule.deadlines(round_ + 1).start)
                for done in [t for t in running if t.done()]:
                    done.result()  # a failure that must stop the node (a lost rank) surfaces here
                round_ += 1
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            watch_memory.cancel()
            await self.swarm.shutdown()

    async def _round(self, r: int) -> None:
        try:
            await engine.run_round(self, r)
        except (asyncio.CancelledError, KeyboardInterrupt, RankFailure):
            raise
        except Exception:  # one bad round must not take the node down; the next one re-syncs
            log.exception("round %d failed", r)

    async def apply(self, manifest: RoundManifest, base: Base) -> OuterState | None:
        """θ_{r+1} from `base` and exactly what `manifest` names (None when a named payload is missing)."""
        return await apply_manifest(self.pool, self.outer, base.state, manifest)

    async def sync(self, manifest: RoundManifest, deadline: float) -> bool:
        """Adopt the state `manifest` signed, fetched from a holder; whether that worked before `deadline`."""
        state = await fetch_signed_state(self.board, manifest, self.numel, deadline)
        if state is not None:
            self.states.adopt(state, manifest.round + 1)
        return state is not None

    def evaluate(self) -> float:
        """Held-out loss of the state we hold, on the run's eval pages."""
        theta = self.states.state.theta
        if self.ranked is not None:
            return self.ranked.evaluate(theta, self.eval_page_ids)
        params.load_flat(self.eval_model, theta.to(self.device))
        return eval_loss(
            self.eval_model, self.corpus.pages(self.eval_page_ids), self.spec.train.seq_len, self.spec.train.batch_size, self.device
        )

    def forget_before(self, r: int) -> None:
        self.swarm.forget_before(r)
        self.pool.forget_before(r)
