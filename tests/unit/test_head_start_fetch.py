"""ContributionPool.announced: a head start names a payload; hostile announcements are never fetched."""

import asyncio
import hashlib

import torch

from node.config import RunSpec
from node.outer.contributions import ContributionPool
from protocol.compression import get_codec
from protocol.messages import ContributionMeta
from protocol.schedule import RoundSchedule

NUMEL = 8192


class NoFetch:
    async def fetch(self, *args, **kwargs):
        raise AssertionError("a hostile announcement must not be fetched")


def pool_with(metas: list[ContributionMeta]) -> ContributionPool:
    spec = RunSpec()

    async def get(key, kind):
        return metas

    pool = ContributionPool(b"r" * 32, NoFetch(), get, get_codec(spec.codec.codec_spec()), spec.codec.name, RoundSchedule(0.0, 10.0))
    pool.numel = NUMEL
    return pool


def meta(digest: bytes, nbytes: int, codec: str) -> ContributionMeta:
    return ContributionMeta(
        run_id=b"r" * 32, round=3, hotkey="them", peer_id=b"p", digest=digest, nbytes=nbytes, codec=codec, trained_from=b"b" * 32
    )


def test_a_head_that_was_announced_and_is_held_is_decoded_and_anything_else_is_refused_unfetched():
    codec = get_codec(RunSpec().codec.codec_spec())
    payload = codec.encode(torch.randn(NUMEL, generator=torch.Generator().manual_seed(1)))
    digest = hashlib.sha256(payload).digest()
    name = RunSpec().codec.name
    good = pool_with([meta(digest, len(payload), name)])
    good.payloads[digest] = (3, payload)
    head = asyncio.run(good.announced(3, "them", digest))
    assert head is not None and head.payload == payload and torch.equal(head.vector, codec.decode(payload, NUMEL))

    too_big = pool_with([meta(digest, 10**9, name)])  # a gigabyte announced: refused before any fetch
    assert asyncio.run(too_big.announced(3, "them", digest)) is None
    other_codec = pool_with([meta(digest, len(payload), "topk")])
    assert asyncio.run(other_codec.announced(3, "them", digest)) is None
    never_announced = pool_with([])
    assert asyncio.run(never_announced.announced(3, "them", digest)) is None
    assert asyncio.run(good.announced(3, "someone else", digest)) is None  # another author's payload is no head of theirs
