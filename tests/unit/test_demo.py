"""devnet/demo.py and devnet/cli.py: the demo's seeded identities and its validators."""

import argparse
import hashlib
from types import SimpleNamespace

from devnet.cli import add_demo
from devnet.demo import key_seed, prepare
from node.chain import DevChain
from node.config import NodeConfig
from node.keys import Keypair, load_hotkey


def test_without_a_seed_the_identities_are_the_usual_ones():
    for i in range(4):
        assert key_seed(i) == hashlib.sha256(f"gradswarm-demo/node{i}".encode()).digest()


def test_a_seed_gives_other_identities_the_same_every_time():
    assert key_seed(2, 7) == hashlib.sha256(b"gradswarm-demo/7/node2").digest() == key_seed(2, 7)
    seeded = {key_seed(i, 7) for i in range(4)}
    assert len(seeded) == 4 and not seeded & {key_seed(i) for i in range(4)}
    assert key_seed(0, 7) != key_seed(0, 8) and key_seed(0, 0) != key_seed(0)


def test_prepare_seeds_the_keys_and_makes_every_honest_node_a_validator(tmp_path, monkeypatch):
    import node.data.sources

    monkeypatch.setattr(node.data.sources, "open_corpus", lambda data, cache: SimpleNamespace(digest="d" * 64))
    spec, configs, cheaters, kinds = prepare(tmp_path, 3, 20.0, ["noise", "late"], seed=5)
    hotkeys = [load_hotkey(c.wallet, "default", tmp_path / "wallets").ss58_address for c in configs]
    assert hotkeys == [Keypair.create_from_seed(key_seed(i, 5)).ss58_address for i in range(5)]
    assert cheaters == hotkeys[3:] and kinds == ["", "", "", "noise", "late"]
    permits = {n.hotkey: n.validator_permit for n in DevChain(spec.chain.path).neurons()}
    assert [permits[h] for h in hotkeys] == [True, True, True, False, False]
    assert all(c.verify_samples == NodeConfig().verify_samples for c in configs)


def test_demo_passes_its_seed_on(monkeypatch):
    import devnet.demo

    seen = {}
    monkeypatch.setattr(devnet.demo, "run_demo", lambda **kw: seen.update(kw) or 0)
    parser = argparse.ArgumentParser()
    add_demo(parser.add_subparsers())
    for argv, seed in ((["demo"], None), (["demo", "--seed", "42"], 42)):
        args = parser.parse_args(argv)
        assert args.func(args) == 0 and seen["seed"] == seed


def test_the_demo_help_names_every_adversary_kind():
    from devnet.adversaries import KINDS

    sub = argparse.ArgumentParser().add_subparsers()
    add_demo(sub)
    option = next(a for a in sub.choices["demo"]._actions if a.dest == "adversaries")
    assert option.help.rsplit(": ", 1)[1].split(",") == list(KINDS)
