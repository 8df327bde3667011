"""An in-memory subnet behind the bittensor SDK's ``Substrate`` seam
(``bt.Subtensor(..., substrate=FakeSubstrate(...))``).

It answers exactly the storage items, runtime call and extrinsics that
BittensorChain reaches through the SDK, and fails the test on anything else,
so this file is also the list of what the adapter really uses on chain.
Values come back the way the SDK's RPC backend decodes them (plain ints,
lists, 0x-hex strings for raw bytes), so the SDK's own decoding runs.

What a real subnet does by itself, the test does explicitly: ``register`` and
``stake`` stand in for btcli, ``epoch`` for the chain's tempo (validator
permits to the top stakes; incentive as the stake-weighted share of the
permit holders' weights, a stand-in for Yuma consensus), ``down`` for an
outage of the RPC endpoint and ``delay`` for one that answers slowly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import bittensor as bt
from bittensor.balance import Balance
from bittensor.result import ExtrinsicResult

TAO = 10**9
U16_MAX = 65535


class FakeSubstrate:
    def __init__(self, netuid: int, *, max_validators: int = 64) -> None:
        self.netuid = netuid
        self.max_validators = max_validators
        self.token_symbols: dict[int, str] = {}
        self.block = 100
        self.hotkeys: list[str] = []
        self.stake_rao: list[int] = []
        self.permits: list[bool] = []
        self.incentives: list[int] = []  # u16, as the runtime reports them
        self.last_update: list[int] = []
        self.weight_rows: dict[int, list[tuple[int, int]]] = {}
        self.commitment_of: dict[str, dict] = {}
        self.commit_reveal = False
        self.timelocked: list[tuple[str, dict]] = []  # (hotkey, call params) awaiting the drand reveal
        self.submitted: list[tuple[Any, str]] = []
        self.down = False
        self.delay = 0.0  # seconds every call takes
        self.calls = 0  # every call the SDK made, up or down

    # What btcli and the chain's epoch do on a real subnet ---------------------

    def register(self, hotkey: str) -> int:
        if hotkey in self.hotkeys:
            return self.hotkeys.index(hotkey)
        for column, value in (
            (self.hotkeys, hotkey),
            (self.stake_rao, 0),
            (self.permits, False),
            (self.incentives, 0),
            (self.last_update, 0),
        ):
            column.append(value)
        return len(self.hotkeys) - 1

    def stake(self, hotkey: str, tao: float) -> None:
        self.stake_rao[self.hotkeys.index(hotkey)] += round(tao * TAO)

    def epoch(self) -> None:
        ranked = sorted((i for i, s in enumerate(self.stake_rao) if s > 0), key=lambda i: (-self.stake_rao[i], i))
        permitted = set(ranked[: self.max_validators])
        self.permits = [uid in permitted for uid in range(len(self.hotkeys))]
        received = [0.0] * len(self.hotkeys)
        total = 0
        for validator, row in self.weight_rows.items():
            row_sum = sum(value for _, value in row)
            if validator not in permitted or not row_sum:
                continue
            total += self.stake_rao[validator]
            for uid, value in row:
                received[uid] += self.stake_rao[validator] * value / row_sum
        self.incentives = [round(U16_MAX * r / total) if total else 0 for r in received]
        self.block += 1

    # The Substrate contract, as far as the SDK uses it for the adapter --------

    async def _call(self) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise bt.RpcConnectionError("connection refused (fake outage)")

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(rao, netuid)

    async def connect(self) -> None:
        await self._call()

    async def close(self) -> None:
        pass

    async def block_number(self) -> int:
        await self._call()
        return self.block

    async def block_hash(self, block: int | None = None) -> str:
        await self._call()
        return f"0x{block if block is not None else self.block:064x}"

    async def block_time(self) -> float:
        await self._call()
        return 12.0

    async def query(self, module: str, fn: str, params: list | None = None, block_hash: str | None = None) -> Any:
        await self._call()
        params = list(params or [])
        if module == "SubtensorModule" and params[:1] == [self.netuid]:
            if fn == "Uids" and len(params) == 2:
                return self.hotkeys.index(params[1]) if params[1] in self.hotkeys else None
            per_subnet = {
                # set_weights preflight and conforming
                "CommitRevealWeightsEnabled": self.commit_reveal,
                "WeightsSetRateLimit": 0,
                "LastUpdate": list(self.last_update),
                "MinAllowedWeights": 0,
                "MaxWeightsLimit": U16_MAX,
                "SubnetEpochConsensus": "Yuma",
                # the timelocked commit's reveal-round arithmetic
                "Tempo": 10,
                "RevealPeriodEpochs": 1,
                "LastEpochBlock": self.block - self.block % 10,
                "PendingEpochAt": 0,
                "SubnetEpochIndex": self.block // 10,
                "BlocksSinceLastStep": self.block % 10,
            }
            if fn in per_subnet and len(params) == 1:
                return per_subnet[fn]
        raise AssertionError(f"the adapter is not expected to read {module}.{fn}{params}")

    async def query_map(self, module: str, fn: str, params: list | None = None, block_hash: str | None = None) -> list[tuple[Any, Any]]:
        await self._call()
        params = list(params or [])
        if (module, fn, params) == ("SubtensorModule", "TokenSymbol", []):
            return []  # read once on connect, for display only
        if params == [self.netuid]:
            if (module, fn) == ("SubtensorModule", "Weights"):
                return [(uid, list(row)) for uid, row in sorted(self.weight_rows.items())]
            if (module, fn) == ("SubtensorModule", "Uids"):
                return [(hotkey, uid) for uid, hotkey in enumerate(self.hotkeys)]
            if (module, fn) == ("Commitments", "CommitmentOf"):
                return list(self.commitment_of.items())
            if (module, fn) == ("Commitments", "RevealedCommitments"):
                return []
        raise AssertionError(f"the adapter is not expected to read the map {module}.{fn}{params}")

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None) -> Any:
        await self._call()
        if (api, method) != ("SubnetInfoRuntimeApi", "get_metagraph"):
            raise AssertionError(f"the adapter is not expected to call {api}.{method}")
        if params != [self.netuid]:
            return None  # no such subnet
        return {
            "hotkeys": list(self.hotkeys),
            "coldkeys": list(self.hotkeys),
            "validator_permit": list(self.permits),
            "total_stake": list(self.stake_rao),
            "incentives": list(self.incentives),
            "block": self.block,
            "tempo": 10,
            "last_step": self.block - self.block % 10,
            "blocks_since_last_step": self.block % 10,
            "owner_hotkey": self.hotkeys[0] if self.hotkeys else "",
            "owner_coldkey": self.hotkeys[0] if self.hotkeys else "",
            "network_registered_at": 1,
        }

    async def compose(self, call: Any) -> Any:
        await self._call()
        return call

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        await self._call()
        return Balance.from_rao(0)

    async def submit(self, call: Any, keypair: Any, **_options: Any) -> ExtrinsicResult:
        """Include the extrinsic in a block and apply it as the runtime would."""
        await self._call()
        self.submitted.append((call, keypair.ss58_address))
        self.block += 1
        hotkey = keypair.ss58_address
        uid = self.hotkeys.index(hotkey) if hotkey in self.hotkeys else None
        target = (call.module, call.function)
        if target == ("SubtensorModule", "set_mechanism_weights"):
            if uid is None:
                return _refused("HotKeyNotRegisteredInSubNet")
            if not self.permits[uid]:
                return _refused("NeuronNoValidatorPermit")
            if any(dest >= len(self.hotkeys) for dest in call.params["dests"]):
                return _refused("UidVecContainInvalidOne")
            self.weight_rows[uid] = list(zip(call.params["dests"], call.params["weights"], strict=True))
            self.last_update[uid] = self.block
        elif target == ("SubtensorModule", "commit_timelocked_mechanism_weights"):
            if uid is None:
                return _refused("HotKeyNotRegisteredInSubNet")
            self.timelocked.append((hotkey, dict(call.params)))
        elif target == ("Commitments", "set_commitment"):
            if uid is None:
                return _refused("AccountNotAllowedCommit")
            fields = call.params["info"]["fields"]
            if len(fields) > 3:
                return _refused("TooManyFieldsInCommitmentInfo")
            # Raw fields come back from the SDK's decoder as 0x-hex.
            decoded = [{variant: "0x" + bytes(value).hex()} for entry in fields for variant, value in entry.items()]
            self.commitment_of[hotkey] = {"block": self.block, "deposit": 0, "info": {"fields": decoded}}
        else:
            raise AssertionError(f"the adapter is not expected to submit {call.module}.{call.function}")
        return ExtrinsicResult(success=True, message="Success")


def _refused(name: str) -> ExtrinsicResult:
    return ExtrinsicResult(success=False, message=name, error=bt.ChainError(name, name))
