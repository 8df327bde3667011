import pickle
import sqlite3
import time

import pytest
from bittensor.sp_core import Keypair

from node.chain import (
    MAX_COMMITMENT_BYTES,
    ChainError,
    ChainView,
    DevChain,
    Neuron,
    RetryPolicy,
)
from node.chain import devchain as devchain_module
from node.chain import devfile as devfile_module
from tests.support import keypair

pytestmark = pytest.mark.chain(block_time=1.0, max_validators=2)  # the `chain` fixture's


def register_keys(chain: DevChain, *names: str) -> list[Keypair]:
    keys = [keypair(n) for n in names]
    for k in keys:
        chain.register(k.ss58_address)
    return keys


def test_devchain_satisfies_chainview(chain):
    assert isinstance(chain, ChainView)


def test_create_refuses_existing_path(tmp_path):
    path = tmp_path / "chain.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        DevChain.create(path)
    assert path.read_bytes() == b"precious"


def test_create_leaves_no_temp_files(tmp_path):
    DevChain.create(tmp_path / "chain.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.db"]


def test_create_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError):
        DevChain.create(tmp_path / "a.db", block_time=0)
    with pytest.raises(ValueError):
        DevChain.create(tmp_path / "b.db", block_time=float("nan"))
    with pytest.raises(ValueError):
        DevChain.create(tmp_path / "c.db", max_validators=0)
    assert list(tmp_path.iterdir()) == []


def test_open_missing_or_foreign_file_fails_clearly(tmp_path):
    with pytest.raises(ChainError):
        DevChain(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ChainError, match="not a readable dev chain"):
        DevChain(foreign)


def test_file_is_in_wal_mode(chain):
    conn = sqlite3.connect(chain.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_registration_gives_sequential_uids_and_is_idempotent(chain):
    a, b, c = keypair("a"), keypair("b"), keypair("c")
    assert chain.register(a.ss58_address) == 0
    assert chain.register(b.ss58_address) == 1
    assert chain.register(a.ss58_address) == 0
    assert chain.register(c.ss58_address) == 2
    assert chain.neurons() == [
        Neuron(0, a.ss58_address, 0.0, False),
        Neuron(1, b.ss58_address, 0.0, False),
        Neuron(2, c.ss58_address, 0.0, False),
    ]
    assert chain.neuron(b.ss58_address) == Neuron(1, b.ss58_address, 0.0, False)
    assert chain.neuron(keypair("unregistered").ss58_address) is None


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "",
        # valid address with its last character changed: checksum fails
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ",
        # same public key as //Alice, but Polkadot's ss58 format instead of Bittensor's
        "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5",
    ],
)
def test_register_rejects_malformed_hotkeys(chain, bad):
    with pytest.raises(ChainError):
        chain.register(bad)
    assert chain.neurons() == []


def test_unregistered_hotkeys_cannot_stake_set_weights_or_commit(chain):
    (a,) = register_keys(chain, "a")
    stranger = keypair("stranger")
    with pytest.raises(ChainError, match="not registered"):
        chain.add_stake(stranger.ss58_address, 10.0)
    with pytest.raises(ChainError, match="not registered"):
        chain.set_weights(stranger, [0], [1.0])
    with pytest.raises(ChainError, match="not registered"):
        chain.set_commitment(stranger, b"hello")
    assert chain.neurons() == [Neuron(0, a.ss58_address, 0.0, False)]
    assert chain.weights() == {}
    assert chain.commitments() == {}


@pytest.mark.parametrize("amount", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_add_stake_rejects_bad_amounts(chain, amount):
    (a,) = register_keys(chain, "a")
    with pytest.raises(ChainError):
        chain.add_stake(a.ss58_address, amount)
    assert chain.neuron(a.ss58_address).stake == 0.0


def test_validator_permits_go_to_top_stakes_only(chain):
    # max_validators=2: of three stakers, the smallest gets no permit, nor does
    # a registered hotkey without stake.
    a, b, c, d = register_keys(chain, "a", "b", "c", "d")
    chain.add_stake(a.ss58_address, 5.0)
    chain.add_stake(b.ss58_address, 50.0)
    chain.add_stake(c.ss58_address, 20.0)
    permits = {n.hotkey: n.validator_permit for n in chain.neurons()}
    assert permits == {
        a.ss58_address: False,
        b.ss58_address: True,
        c.ss58_address: True,
        d.ss58_address: False,
    }
    # Stake accumulates: a overtakes c.
    chain.add_stake(a.ss58_address, 25.0)
    assert chain.neuron(a.ss58_address) == Neuron(0, a.ss58_address, 30.0, True)
    assert chain.neuron(c.ss58_address).validator_permit is False


def test_permit_ties_go_to_lower_uid(chain):
    a, b, c = register_keys(chain, "a", "b", "c")
    for k in (c, b, a):
        chain.add_stake(k.ss58_address, 7.0)
    assert [n.validator_permit for n in chain.neurons()] == [True, True, False]


def test_only_permit_holders_set_weights(chain):
    a, b, c = register_keys(chain, "a", "b", "c")
    chain.add_stake(a.ss58_address, 10.0)
    chain.add_stake(b.ss58_address, 10.0)
    chain.add_stake(c.ss58_address, 1.0)
    with pytest.raises(ChainError, match="validator permit"):
        chain.set_weights(c, [0, 1], [1.0, 1.0])
    chain.set_weights(a, [1, 2], [1.0, 3.0])
    assert chain.weights() == {0: {1: pytest.approx(0.25, abs=1e-4), 2: pytest.approx(0.75)}}


def test_weights_are_quantized_to_u16_and_normalized(chain):
    a, _, _ = register_keys(chain, "a", "b", "c")
    chain.add_stake(a.ss58_address, 1.0)
    chain.set_weights(a, [0, 1, 2], [2.0, 1.0, 0.0])
    # Bittensor max-upscales to 65535 and drops zero weights.
    stored = sqlite3.connect(chain.path).execute("SELECT uid, value FROM weights ORDER BY uid").fetchall()
    assert stored == [(0, 65535), (1, 32768)]
    row = chain.weights()[0]
    assert set(row) == {0, 1}
    assert sum(row.values()) == pytest.approx(1.0)
    assert row[0] == pytest.approx(65535 / (65535 + 32768))
    # A new row replaces the old one entirely.
    chain.set_weights(a, [2], [0.5])
    assert chain.weights() == {0: {2: 1.0}}


def test_public_only_keypair_cannot_write(chain):
    (a,) = register_keys(chain, "a")
    chain.add_stake(a.ss58_address, 1.0)
    public_only = Keypair(ss58_address=a.ss58_address)
    with pytest.raises(ChainError, match="cannot sign"):
        chain.set_weights(public_only, [0], [1.0])
    with pytest.raises(ChainError, match="cannot sign"):
        chain.set_commitment(public_only, b"x")


def test_commitments_are_size_bounded_and_replaced(chain):
    a, b = register_keys(chain, "a", "b")
    chain.set_commitment(a, b"\x00" * MAX_COMMITMENT_BYTES)
    with pytest.raises(ChainError, match=str(MAX_COMMITMENT_BYTES)):
        chain.set_commitment(b, b"\x00" * (MAX_COMMITMENT_BYTES + 1))
    with pytest.raises(ChainError, match="bytes"):
        chain.set_commitment(b, "text")
    assert chain.commitments() == {a.ss58_address: b"\x00" * MAX_COMMITMENT_BYTES}
    chain.set_commitment(a, b"peer-id")
    chain.set_commitment(b, b"")
    assert chain.commitments() == {a.ss58_address: b"peer-id", b.ss58_address: b""}


def test_block_height_follows_block_time(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(devchain_module.time, "time", lambda: clock[0])
    chain = DevChain.create(tmp_path / "chain.db", block_time=0.5)
    assert chain.genesis_time == 1000.0
    assert chain.block_time == 0.5
    assert chain.block() == 0
    clock[0] = 1000.49
    assert chain.block() == 0
    clock[0] = 1000.5
    assert chain.block() == 1
    clock[0] = 1012.3
    assert chain.block() == 24
    clock[0] = 990.0  # clock stepped back before genesis
    assert chain.block() == 0


def test_block_height_advances_in_real_time(tmp_path):
    chain = DevChain.create(tmp_path / "chain.db", block_time=0.05)
    start = chain.block()
    time.sleep(0.2)
    assert chain.block() >= start + 3


def test_parameters_survive_reopening_and_pickling(tmp_path):
    chain = DevChain.create(tmp_path / "chain.db", block_time=0.25, max_validators=1, netuid=7)
    (a,) = register_keys(chain, "a")
    for other in (DevChain(tmp_path / "chain.db"), pickle.loads(pickle.dumps(chain))):
        assert (other.genesis_time, other.block_time, other.netuid) == (
            chain.genesis_time,
            0.25,
            7,
        )
        assert other.neurons() == chain.neurons() == [Neuron(0, a.ss58_address, 0.0, False)]
    assert len(pickle.dumps(chain)) < 300  # only the path travels


def test_a_locked_file_is_an_outage_not_a_refusal(tmp_path, monkeypatch):
    # Another process holding the write lock past the busy timeout: the write
    # is queued and goes through once the lock is released.
    monkeypatch.setattr(devfile_module, "_BUSY_TIMEOUT_S", 0.05)
    DevChain.create(tmp_path / "chain.db", max_validators=2)
    chain = DevChain(tmp_path / "chain.db", policy=RetryPolicy(first_delay=0.05, max_delay=0.1))
    (a,) = register_keys(chain, "a")
    chain.add_stake(a.ss58_address, 1.0)
    holder = sqlite3.connect(chain.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        chain.set_weights(a, [0], [1.0])
        assert chain.health().pending_writes == (f"set weights for {a.ss58_address}",)
        assert "locked" in chain.health().last_error
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 5
    while chain.health().pending_writes:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert chain.weights() == {0: {0: 1.0}}


def test_incentive_is_computed_on_every_read(chain):
    a, b, _ = register_keys(chain, "a", "b", "c")
    chain.add_stake(a.ss58_address, 3.0)
    chain.add_stake(b.ss58_address, 1.0)
    chain.set_weights(a, [2], [1.0])
    assert [n.incentive for n in chain.neurons()] == [0.0, 0.0, 1.0]
    chain.set_weights(b, [1], [1.0])  # b holds a quarter of the permit holders' stake
    assert [n.incentive for n in chain.neurons()] == [0.0, 0.25, 0.75]
    assert [n.weight for n in chain.neurons()] == [0.0, 0.25, 0.75]
