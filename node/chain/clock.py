"""The run's round clock read off its chain: what nodes, bootstraps and the devnet's peers count rounds by."""

from __future__ import annotations

import time

from node.chain.devchain import DevChain
from node.chain.view import ChainView
from protocol.schedule import RoundSchedule


def chain_genesis(chain: ChainView, start_block: int) -> float:
    """Wall-clock time of `start_block`: exact on the dev chain, estimated from the chain's block time elsewhere."""
    if isinstance(chain, DevChain):
        return chain.genesis_time + start_block * chain.block_time
    return time.time() - (chain.block() - start_block) * chain.block_time


def run_schedule(spec, chain: ChainView) -> RoundSchedule:
    """The RoundSchedule of run `spec` (a RunSpec) on `chain`."""
    s = spec.schedule
    return RoundSchedule(genesis=chain_genesis(chain, s.start_block), round_seconds=s.round_seconds, overlap=s.overlap)
