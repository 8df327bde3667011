"""`gradswarm export --state <hash> --peer MADDR` against live nodes over real libp2p streams and a real DHT on loopback."""

import asyncio
import time

import pytest
import torch
from hivemind.p2p import P2P
from transformers import AutoModelForCausalLM

from node.audit.serve import serve_audit
from node.audit.store import AuditStore
from node.checkpoint.state import serialize_state
from node.cli import main
from node.config import NodeConfig, render_run_file
from node.outer.optimizer import OuterState
from node.swarm import transfer
from node.trainer import params
from node.trainer.model import build_model
from protocol import signing
from protocol.messages import ManifestEntry, RoundManifest
from tests.support.swarm import no_states, start_swarm

pytestmark = pytest.mark.chain(max_validators=1)  # Alice holds the one validator permit


def a_state(spec, shift: float = 0.0) -> OuterState:
    model = build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size)
    return OuterState.fresh(params.flatten(model) + shift)


def export_args(tmp_path, spec, state_hash: bytes, peer: str, out: str = "hf") -> list[str]:
    run = tmp_path / "run.toml"
    run.write_text(render_run_file(spec, NodeConfig()))
    return ["export", "--config", str(run), "--state", state_hash.hex(), "--peer", peer, "--out", str(tmp_path / out), "--no-progress"]


def test_a_state_is_fetched_by_hash_from_a_live_node_checked_and_exported_with_its_signed_manifest(
    tmp_path, chain, spec, registered, capsys
):
    alice = registered["Alice"]
    state = a_state(spec, 0.001)
    manifest = signing.sign(
        RoundManifest(
            run_id=spec.run_id,
            round=4,
            hotkey=alice.ss58_address,
            base_state_hash=b"\1" * 32,
            entries=(ManifestEntry(alice.ss58_address, b"\2" * 32),),
            result_state_hash=state.state_hash(),
        ),
        alice,
    )

    async def scenario():
        node = await start_swarm(spec.run_id, chain, tmp_path, "node")
        try:

            async def held(digest: bytes) -> bytes | None:  # θ_5, the result of round 4's manifest, held but not audited
                return serialize_state(state, 5) if digest == state.state_hash() else None

            await serve_audit(node.p2p, AuditStore(tmp_path / "audit"), held)
            assert await node.put(manifest, time.time() + 600)
            peer = node.visible_maddrs()[0]
            assert await asyncio.to_thread(main, export_args(tmp_path, spec, state.state_hash(), peer)) == 0
            # a hash nobody holds, asked of the same live node: refused, naming the hash
            missing = a_state(spec, 0.002).state_hash()
            assert await asyncio.to_thread(main, export_args(tmp_path, spec, missing, peer, "none")) == 2
            return missing
        finally:
            await node.shutdown()

    missing = asyncio.run(scenario())
    captured = capsys.readouterr()
    assert f"no peer served state {missing.hex()}" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "none").exists() and not (tmp_path / "none.partial").exists()
    assert "vouched for by " + alice.ss58_address in captured.out
    card = (tmp_path / "hf" / "README.md").read_text()
    for needle in (spec.run_id.hex(), "round: 5", state.state_hash().hex(), alice.ss58_address, manifest.signature.hex()):
        assert needle in card
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert torch.equal(params.flatten(loaded), state.theta)


def test_a_peer_that_serves_other_bytes_under_the_hash_is_refused(tmp_path, spec, capsys):
    wanted, other = a_state(spec, 0.003), a_state(spec, 0.004)

    async def lying(kind, digest):
        return serialize_state(other, 3) if kind == "state" else None  # whatever is asked, another state

    async def scenario():
        server = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])  # a bare peer: no DHT, only the run's fetch stream
        try:
            await transfer.serve(server, spec.run_id, lying)
            peer = str((await server.get_visible_maddrs())[0])
            return await asyncio.to_thread(main, export_args(tmp_path, spec, wanted.state_hash(), peer))
        finally:
            await server.shutdown()

    assert asyncio.run(scenario()) == 2
    err = capsys.readouterr().err
    assert f"no peer served state {wanted.state_hash().hex()}" in err and "another hash" in err
    assert not (tmp_path / "hf").exists()


def test_holders_are_found_through_the_dht_from_the_run_bootstrap_list(tmp_path, chain, spec, capsys):
    state = a_state(spec, 0.005)

    async def scenario():
        entry = await start_swarm(spec.run_id, chain, tmp_path, "entry")
        holder = await start_swarm(spec.run_id, chain, tmp_path, "holder", bootstrap=entry.visible_maddrs())
        try:
            store = AuditStore(tmp_path / "audit")
            store.put_state(state, state.state_hash(), 2)
            await serve_audit(holder.p2p, store, no_states)  # only the holder has it; the run.toml names only the entry
            run = tmp_path / "run.toml"
            run.write_text(render_run_file(spec, NodeConfig(bootstrap=tuple(entry.visible_maddrs()))))
            args = ["sample", "--config", str(run), "--state", state.state_hash().hex(), "--prompt", "def ", "--tokens", "3"]
            return await asyncio.to_thread(main, args)
        finally:
            await holder.shutdown()
            await entry.shutdown()

    assert asyncio.run(scenario()) == 0
    assert capsys.readouterr().out.startswith("def ")  # fetched from the holder the DHT named, then sampled
