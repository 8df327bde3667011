"""BittensorChain against an in-memory fake of the SDK's ``Substrate`` backend.

The fake stores just enough chain state for the reads the adapter makes and
applies the two extrinsics it submits, so these tests exercise the SDK's real
read decoding, weight conforming and signing paths, without a network.
"""

from typing import Any

import bittensor as bt
import pytest
from bittensor.balance import Balance
from bittensor.result import ExtrinsicResult
from bittensor.sp_core import Keypair

from node.chain import ChainError, ChainView
from node.chain.bittensor_adapter import BittensorChain, raw_commitment_bytes

NETUID = 3
ALICE, BOB, CAROL = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Carol"))
TAO = 10**9


class FakeSubstrate:
    token_symbols: dict[int, str] = {}

    def __init__(self) -> None:
        self.hotkeys = [ALICE.ss58_address, BOB.ss58_address, CAROL.ss58_address]
        self.storage: dict[tuple[str, str, tuple], Any] = {}
        self.maps: dict[tuple[str, str, tuple], list] = {}
        self.submitted: list[tuple[Any, str]] = []
        self.fail_next: str | None = None
        for uid, hotkey in enumerate(self.hotkeys):
            self.storage[("SubtensorModule", "Uids", (NETUID, hotkey))] = uid
        self.maps[("SubtensorModule", "Uids", (NETUID,))] = [
            (hotkey, uid) for uid, hotkey in enumerate(self.hotkeys)
        ]
        self.graph = {
            "hotkeys": self.hotkeys,
            "coldkeys": self.hotkeys,
            "validator_permit": [True, True, False],
            "total_stake": [50 * TAO, 1500 * TAO // 1000, 0],
            "block": 100,
            "tempo": 360,
            "last_step": 90,
            "blocks_since_last_step": 10,
            "owner_hotkey": ALICE.ss58_address,
            "owner_coldkey": ALICE.ss58_address,
            "network_registered_at": 1,
        }

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(rao, netuid)

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def block_number(self) -> int:
        return 100

    async def block_hash(self, block=None) -> str:
        return "0x" + "00" * 32

    async def block_time(self) -> float:
        return 12.0

    async def query(self, module, fn, params=None, block_hash=None):
        return self.storage.get((module, fn, tuple(params or ())))

    async def query_map(self, module, fn, params=None, block_hash=None):
        return self.maps.get((module, fn, tuple(params or ())), [])

    async def runtime_call(self, api, method, params, block_hash=None):
        if (api, method, params) == ("SubnetInfoRuntimeApi", "get_metagraph", [NETUID]):
            return self.graph
        return None

    async def compose(self, call):
        return call

    async def estimate_fee(self, call, keypair) -> Balance:
        return Balance.from_rao(0)

    async def submit(self, call, keypair, **_kwargs) -> ExtrinsicResult:
        self.submitted.append((call, keypair.ss58_address))
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            return ExtrinsicResult(success=False, message=message, error=bt.ChainError(message))
        uid = self.hotkeys.index(keypair.ss58_address)
        if call.function == "set_mechanism_weights":
            rows = self.maps.setdefault(("SubtensorModule", "Weights", (NETUID,)), [])
            rows[:] = [r for r in rows if r[0] != uid]
            rows.append((uid, list(zip(call.params["dests"], call.params["weights"]))))
        elif call.function == "set_commitment":
            # Stored the way the SDK's decoder hands Raw fields back: 0x-hex.
            fields = [
                {variant: "0x" + bytes(value).hex()}
                for entry in call.params["info"]["fields"]
                for variant, value in entry.items()
            ]
            commitments = self.maps.setdefault(("Commitments", "CommitmentOf", (NETUID,)), [])
            commitments.append(
                (keypair.ss58_address, {"block": 100, "deposit": 0, "info": {"fields": fields}})
            )
        return ExtrinsicResult(success=True)


@pytest.fixture
def fake(monkeypatch, tmp_path) -> FakeSubstrate:
    # Connecting caches token symbols on disk; keep that out of $HOME.
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "symbols.json"))
    return FakeSubstrate()


@pytest.fixture
def chain(fake) -> BittensorChain:
    return BittensorChain("local", NETUID, substrate=fake)


def test_is_a_chainview(chain):
    assert isinstance(chain, ChainView)


def test_block_and_neurons_from_metagraph(chain):
    assert chain.block() == 100
    neurons = chain.neurons()
    assert [(n.uid, n.hotkey, n.validator_permit) for n in neurons] == [
        (0, ALICE.ss58_address, True),
        (1, BOB.ss58_address, True),
        (2, CAROL.ss58_address, False),
    ]
    assert [n.stake for n in neurons] == [pytest.approx(50.0), pytest.approx(1.5), 0.0]
    assert chain.neuron(BOB.ss58_address) == neurons[1]
    assert chain.neuron(Keypair.create_from_uri("//Dave").ss58_address) is None


def test_missing_subnet_is_a_chain_error(chain, fake):
    fake.graph = None
    with pytest.raises(ChainError, match="does not exist"):
        chain.neurons()


def test_set_weights_round_trip(chain, fake):
    chain.set_weights(ALICE, [1, 2], [1.0, 3.0])
    call, signer = fake.submitted[-1]
    assert signer == ALICE.ss58_address
    assert (call.module, call.function) == ("SubtensorModule", "set_mechanism_weights")
    assert call.params["dests"] == [1, 2]
    assert call.params["weights"] == [21845, 65535]
    assert chain.weights() == {0: {1: pytest.approx(0.25), 2: pytest.approx(0.75)}}


def test_set_weights_failures_are_chain_errors(chain, fake):
    with pytest.raises(ChainError, match="not registered"):
        chain.set_weights(Keypair.create_from_uri("//Dave"), [0], [1.0])
    with pytest.raises(ChainError):
        chain.set_weights(ALICE, [0, 0], [1.0, 1.0])
    fake.fail_next = "NeuronNoValidatorPermit"
    with pytest.raises(ChainError, match="NeuronNoValidatorPermit"):
        chain.set_weights(CAROL, [0], [1.0])


def test_commitment_round_trip(chain, fake):
    chain.set_commitment(BOB, b"\x00\xffpeer")
    call, signer = fake.submitted[-1]
    assert signer == BOB.ss58_address
    assert (call.module, call.function) == ("Commitments", "set_commitment")
    assert call.params == {"netuid": NETUID, "info": {"fields": [{"Raw6": b"\x00\xffpeer"}]}}
    assert chain.commitments() == {BOB.ss58_address: b"\x00\xffpeer"}
    with pytest.raises(ChainError, match="128"):
        chain.set_commitment(BOB, b"x" * 129)


def test_commitments_of_deregistered_hotkeys_are_ignored(chain, fake):
    chain.set_commitment(BOB, b"bob")
    fake.maps[("SubtensorModule", "Uids", (NETUID,))] = [(ALICE.ss58_address, 0)]
    assert chain.commitments() == {}


@pytest.mark.parametrize(
    "fields",
    [
        [{"Sha256": "0x" + "00" * 32}],
        [{"Raw2": "0xzz"}],
        [{"Raw64": "0x" + "00" * 64}, {"Raw65": "0x" + "00" * 65}],
        ["None"],
    ],
)
def test_foreign_commitments_are_skipped(fields):
    assert raw_commitment_bytes(fields) is None


def test_raw_fields_concatenate():
    assert raw_commitment_bytes([{"Raw2": "0x0102"}, {"Raw1": "0x03"}]) == b"\x01\x02\x03"
