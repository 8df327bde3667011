"""Fixtures that tests of both kinds (tests/unit, tests/integration) share.

- ``chain``: a fresh dev chain at ``tmp_path / "chain.sqlite"``, with DevChain.create's defaults
  or the parameters of the test's ``chain`` marker: ``pytestmark = pytest.mark.chain(max_validators=1)``.
- ``spec``: a RunSpec on that dev chain. ``keys``, ``alice``, ``bob``: the dev keypairs.
- ``registered``: Alice and Bob registered and staked (Alice more), Eve not registered.
- ``btcli_cache``: the bittensor SDK's token-symbol cache kept out of $HOME.
- ``harness``: each ChainView contract test on the dev chain and on the Bittensor adapter.
- ``audit_store``: the audit records of one verified round (round 1 of a run with a learning-rate plan).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from node.chain import DevChain
from node.config import ChainSpec, RunSpec
from tests.support import keypair


@pytest.fixture
def chain(request, tmp_path) -> DevChain:
    marker = request.node.get_closest_marker("chain")
    return DevChain.create(tmp_path / "chain.sqlite", **(marker.kwargs if marker else {}))


@pytest.fixture
def spec(chain) -> RunSpec:
    return RunSpec(chain=ChainSpec(kind="dev", path=str(chain.path)))


@pytest.fixture(scope="session")
def keys():
    return {name: keypair(name) for name in ("Alice", "Bob", "Eve")}


@pytest.fixture(scope="session")
def alice(keys):
    return keys["Alice"]


@pytest.fixture(scope="session")
def bob(keys):
    return keys["Bob"]


@pytest.fixture
def registered(chain, keys):
    """Alice and Bob registered and staked, Eve not registered: on a chain of ``max_validators=1``,
    Alice holds the validator permit and Bob none."""
    chain.register(keys["Alice"].ss58_address)
    chain.add_stake(keys["Alice"].ss58_address, 10)
    chain.register(keys["Bob"].ss58_address)
    chain.add_stake(keys["Bob"].ss58_address, 1)
    return keys


@pytest.fixture
def btcli_cache(monkeypatch, tmp_path):
    """Connecting caches token symbols on disk; keep that out of $HOME."""
    path = tmp_path / "symbols.json"
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(path))
    return path


@pytest.fixture(params=["devchain", "bittensor"])
def harness(request, tmp_path, monkeypatch, btcli_cache):
    from tests.support.chains import HARNESSES

    return HARNESSES[request.param](tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def audit_store(tmp_path_factory):
    """A store holding the records of one verified round of three contributions trained as nodes train
    (their pages, their seeds, their first-batch losses, the plan's factors), all three work-checked.
    The round is 1 of a run with a plan, so C's head start takes round 0's outer lr, not round 1's."""
    from dataclasses import replace

    import torch

    from node.audit.store import AuditStore
    from node.config import TrainSpec
    from node.data.build import build_corpus_from_text
    from node.outer.head_start import Head, head_start
    from node.outer.optimizer import OuterOptimizer, OuterState
    from node.round.train import local_delta
    from node.trainer import params
    from node.trainer.inner import InnerTrainer, first_batch, row_losses
    from node.trainer.model import build_model
    from node.verifier.scores import Scoreboard
    from node.verifier.verifier import Contribution, Verifier, VerifierSettings
    from protocol import signing
    from protocol.assignment import assign_pages, eval_pages, train_seed
    from protocol.compression import get_codec
    from protocol.messages import ContributionMeta
    from protocol.plan import LrCurve, PlanSpec

    plan = PlanSpec(rounds=10, inner=LrCurve("cosine", warmup_rounds=2), outer=LrCurve("wsd", warmup_rounds=3, decay_rounds=4))
    spec = replace(RunSpec(), train=TrainSpec(inner_steps=8, batch_size=4, seq_len=64, warmup_steps=0), plan=plan)
    run, r = spec.run_id, 1
    root = tmp_path_factory.mktemp("audit")
    text = b"".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n\n".encode() for i in range(3000))
    corpus = build_corpus_from_text("synthetic", text.decode(), root / "corpus", page_tokens=512)
    store = AuditStore(root / "store")
    store.write_spec(spec)
    excluded = frozenset(eval_pages(run, corpus.num_pages, 2))
    verifier = Verifier(
        run, keypair("Verifier"), spec.model, corpus, excluded, pages_per_round=2, train=spec.train, outer=OuterOptimizer.from_spec(spec), store=store,
        settings=VerifierSettings(samples=3, control_pages=4),
    )  # fmt: skip
    model = build_model("tiny", 0)
    base = OuterState.fresh(params.flatten(model))
    codec = get_codec(spec.codec.codec_spec())
    contributions = {}
    numel = base.theta.numel()
    # C took a head start (node/outer/head_start.py): its own last payload's outer step, then training
    head_payload = codec.encode(0.01 * torch.randn(numel, generator=torch.Generator().manual_seed(5)))
    head = Head(hashlib.sha256(head_payload).digest(), head_payload, codec.decode(head_payload, numel))
    head_lr = spec.outer.lr * plan.outer_factor(r - 1)  # the head stands for round r-1's outer step
    assert head_lr != spec.outer.lr * plan.outer_factor(r)
    for name in ("A", "B", "C"):
        key = keypair(name)
        hotkey, seed = key.ss58_address, train_seed(run, r, key.ss58_address)
        pages = corpus.pages(assign_pages(run, r, hotkey, corpus.num_pages, 2, excluded))
        start = head_start(base.theta, head.vector, head_lr) if name == "C" else base.theta
        params.load_flat(model, start)
        first = tuple(row_losses(model, first_batch(pages, spec.train.batch_size, spec.train.seq_len, seed)))
        trainer = InnerTrainer.from_spec(model, spec.train, "cpu")
        _, delta = local_delta(model, trainer, start, pages, spec.train.inner_steps, seed, lr_factor=plan.inner_factor(r))
        payload = codec.encode(delta)
        meta = ContributionMeta(
            run_id=run, round=r, hotkey=hotkey, peer_id=b"p", digest=hashlib.sha256(payload).digest(), nbytes=len(payload),
            codec=spec.codec.name, trained_from=base.state_hash(), first_losses=first, head_start=head.digest if name == "C" else b"",
        )  # fmt: skip
        mine = head if name == "C" else None
        contributions[hotkey] = Contribution(signing.sign(meta, key), codec.decode(payload, numel), payload, mine)
    records = verifier.verify_round(r, base, base.state_hash(), b"beacon".ljust(32, b"."), contributions, {}, Scoreboard())
    assert len(records) == 3 and {r.subject for r in records} == set(contributions)
    assert all(r.metric("work_checked") == 1.0 for r in records), [r.reason for r in records]
    started = {r.subject: r for r in records if r.head_start}
    assert list(started) == [keypair("C").ss58_address] and started[keypair("C").ss58_address].metric("first_loss_gap") < 1e-5
    for record in records:
        signing.verify(record, run)
        assert record.base_state_hash == base.state_hash() and record.verdict in ("pass", "fail")
        assert len(record.compared) == 2 and len(record.page_digests) >= 2
    return store


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's training tests: the machine's 2 cores are shared with other
    processes, and more threads under contention slow these tests down about tenfold."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
