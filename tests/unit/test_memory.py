"""The node hands freed C heap back to the OS once a round (node.memory.release_free_heap)."""

from __future__ import annotations

import sys

import numpy as np
import psutil
import pytest

from node.memory import release_free_heap, tree_rss

MIB = 1 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_heap_pinned_under_a_live_block_goes_back_to_the_os():
    # 100 KiB blocks sit below glibc's mmap threshold, so they come from the heap; keeping the last one
    # alive pins the heap's top, so freeing the rest cannot shrink it by itself.
    blocks = [np.ones(100 * 1024, dtype=np.uint8) for _ in range(2000)]
    pinned = blocks.pop()
    del blocks
    before = psutil.Process().memory_info().rss
    assert release_free_heap()
    after = psutil.Process().memory_info().rss
    assert before - after > 100 * MIB, (before // MIB, after // MIB)
    assert pinned.sum() == pinned.size  # the live block is untouched


def test_tree_rss_counts_this_process():
    assert tree_rss() >= psutil.Process().memory_info().rss
