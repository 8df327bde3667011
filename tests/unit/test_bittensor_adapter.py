"""What only the Bittensor adapter does: the extrinsics it sends and how it
reads the SDK's answers. What every chain must do is in test_chain_contract.py;
both run against the in-memory substrate of tests/support/fake_subtensor.py."""

import pickle

import bittensor as bt
import pytest

from node.chain import MAX_COMMITMENT_BYTES, ChainError, ChainView, RefreshWindows, RetryPolicy
from node.chain.bittensor_adapter import BittensorChain
from node.chain.bittensor_codec import raw_commitment_bytes, raw_fields
from node.config import ConfigError, parse_run_file
from tests.support import keypair, wait_for
from tests.support.fake_subtensor import FakeSubstrate

NETUID = 3
ALICE, BOB, CAROL = (keypair(n) for n in ("Alice", "Bob", "Carol"))


@pytest.fixture
def fake(btcli_cache) -> FakeSubstrate:
    fake = FakeSubstrate(NETUID, max_validators=2)
    for k in (ALICE, BOB, CAROL):
        fake.register(k.ss58_address)
    fake.stake(ALICE.ss58_address, 50)
    fake.stake(BOB.ss58_address, 1.5)
    fake.epoch()
    return fake


@pytest.fixture
def chain(fake) -> BittensorChain:  # here, not the dev chain of tests/conftest.py
    return BittensorChain("local", NETUID, substrate=fake, policy=RetryPolicy(first_delay=0.05, max_delay=0.2))


def test_is_a_chainview(chain):
    assert isinstance(chain, ChainView)


@pytest.mark.parametrize("network", ["finney", "test", "local", "ws://10.0.0.5:9944", "wss://lite.chain.opentensor.ai:443"])
def test_run_toml_chain_table(network):
    spec, _ = parse_run_file(f'[chain]\nkind = "bittensor"\nnetwork = "{network}"\nnetuid = 7\n')
    assert (spec.chain.kind, spec.chain.network, spec.chain.netuid) == ("bittensor", network, 7)


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('kind = "substrate"', "kind must be"),
        ('kind = "bittensor"\nnetwork = "mainnet"\nnetuid = 7', "network must be"),
        ('kind = "bittensor"\nnetwork = "http://127.0.0.1:9944"\nnetuid = 7', "network must be"),
        ('kind = "bittensor"\nnetwork = "finney"', "netuid must name a subnet"),
        ('kind = "bittensor"\nnetwork = "finney"\nnetuid = -1', "netuid"),
    ],
)
def test_run_toml_chain_table_errors(table, error):
    with pytest.raises(ConfigError, match=error):
        parse_run_file(f"[chain]\n{table}\n")


def test_unknown_network_is_a_chain_error():
    with pytest.raises(ChainError, match="Unknown network"):
        BittensorChain("mainnet", NETUID)


def test_pickles_as_its_network_and_netuid(chain):
    # The DHT's record validator may carry a ChainView into another process.
    copy = pickle.loads(pickle.dumps(BittensorChain("test", 7)))
    assert repr(copy) == "BittensorChain(network='test', netuid=7)"
    with pytest.raises(TypeError, match="injected substrate"):
        pickle.dumps(chain)


def test_stake_is_the_subnet_total_stake_and_incentive_the_runtimes(chain, fake):
    fake.incentives = [0, 65535, 0]
    neurons = chain.neurons()
    assert [n.stake for n in neurons] == [pytest.approx(50.0), pytest.approx(1.5), 0.0]
    assert [n.incentive for n in neurons] == [0.0, 1.0, 0.0]


def test_block_time_comes_from_the_chain(chain):
    assert chain.block_time == 12.0


def test_missing_subnet_is_a_chain_error(fake):
    with pytest.raises(ChainError, match="does not exist"):
        BittensorChain("local", NETUID + 1, substrate=fake).neurons()


def test_plain_weights_go_out_as_set_mechanism_weights(chain, fake):
    chain.set_weights(ALICE, [1, 2], [1.0, 3.0])
    call, signer = fake.submitted[-1]
    assert signer == ALICE.ss58_address
    assert (call.module, call.function) == ("SubtensorModule", "set_mechanism_weights")
    assert (call.params["netuid"], call.params["dests"], call.params["weights"]) == (NETUID, [1, 2], [21845, 65535])


def test_commit_reveal_subnet_gets_a_timelocked_commit(chain, fake):
    fake.commit_reveal = True
    chain.set_weights(ALICE, [1, 2], [1.0, 3.0])
    call, signer = fake.submitted[-1]
    assert (call.module, call.function, signer) == (
        "SubtensorModule",
        "commit_timelocked_mechanism_weights",
        ALICE.ss58_address,
    )
    assert call.params["netuid"] == NETUID and call.params["reveal_round"] > 0
    assert len(call.params["commit"]) > 0  # drand-timelock ciphertext: nobody reads it before the reveal


def test_chain_refusals_are_chain_errors_and_not_queued(chain, fake):
    with pytest.raises(ChainError, match="NeuronNoValidatorPermit"):
        chain.set_weights(CAROL, [0], [1.0])
    with pytest.raises(ChainError, match="not registered"):
        chain.set_weights(keypair("Dave"), [0], [1.0])
    assert chain.health().pending_writes == ()


def test_a_connection_dropped_during_a_submission_is_an_outage(chain, fake, monkeypatch):
    submit = fake.submit

    async def dropped(call, keypair, **options):
        # What the SDK's RPC backend raises when the socket dies mid-submission.
        try:
            raise ConnectionResetError("socket closed")
        except ConnectionResetError as e:
            raise bt.ChainError(str(e)) from e

    monkeypatch.setattr(fake, "submit", dropped)
    chain.set_commitment(BOB, b"peer")  # queued, not refused
    assert chain.health().pending_writes == (f"set the commitment of {BOB.ss58_address}",)
    monkeypatch.setattr(fake, "submit", submit)
    wait_for(lambda: not chain.health().pending_writes)  # retried after the backoff
    assert chain.commitments() == {BOB.ss58_address: b"peer"}


def test_a_hung_chain_holds_readers_up_for_stale_wait_at_most(fake):
    import time

    # Every read asks the chain: the stake change below is made behind the view's back.
    chain = BittensorChain("local", NETUID, substrate=fake, policy=RetryPolicy(stale_wait=0.1), refresh=RefreshWindows.uniform(0))
    seen = chain.neurons()
    fake.delay = 0.6
    fake.stake(CAROL.ss58_address, 7)
    started = time.monotonic()
    assert chain.neurons() == seen  # the last answer, after stale_wait
    assert chain.neurons() == seen  # joins the read in flight, without waiting again
    assert time.monotonic() - started < 0.5  # not the 0.6 s a chain call takes
    assert chain.health().reachable  # slow is not down
    wait_for(lambda: chain.neurons()[2].stake == pytest.approx(7.0), timeout=20)  # the slow answer lands


def test_commitments_are_split_into_raw_fields(chain, fake):
    data = bytes(range(256)) + b"\x07" * (MAX_COMMITMENT_BYTES - 256)
    chain.set_commitment(BOB, data)
    call, signer = fake.submitted[-1]
    assert (call.module, call.function, signer) == ("Commitments", "set_commitment", BOB.ss58_address)
    assert [list(f) for f in call.params["info"]["fields"]] == [["Raw128"], ["Raw128"], ["Raw128"]]
    assert chain.commitments() == {BOB.ss58_address: data}
    assert raw_fields(b"x" * 129) == [{"Raw128": b"x" * 128}, {"Raw1": b"x"}]
    assert raw_fields(b"") == []


def test_commitments_of_deregistered_hotkeys_are_ignored(chain, fake):
    chain.set_commitment(BOB, b"bob")
    fake.hotkeys[1] = keypair("Eve").ss58_address  # Bob's uid was taken over
    assert chain.commitments() == {}


@pytest.mark.parametrize(
    "fields",
    [
        [{"Sha256": "0x" + "00" * 32}],
        [{"Raw2": "0xzz"}],
        [{"Raw128": "0x" + "00" * 128}] * 3 + [{"Raw1": "0x00"}],
        ["None"],
    ],
)
def test_foreign_commitments_are_skipped(fields):
    assert raw_commitment_bytes(fields) is None


def test_raw_fields_concatenate():
    assert raw_commitment_bytes([{"Raw2": "0x0102"}, {"Raw1": "0x03"}]) == b"\x01\x02\x03"
