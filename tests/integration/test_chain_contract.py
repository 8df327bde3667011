"""The part of the ChainView contract that needs a second process: a view that survives a fork
(each test runs on the dev chain and on the Bittensor adapter: the `harness` fixture)."""

import os
import signal

from tests.support.chains import A, validators


def test_works_in_a_forked_child(harness):
    # hivemind forks its DHT process with the node's ChainView inside; locks,
    # threads and the SDK's event loop do not survive a fork.
    chain = validators(harness, {A: 50.0})
    chain.neurons()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        signal.alarm(20)
        try:
            ok = [n.hotkey for n in chain.neurons()] == [A.ss58_address] and chain.weights() == {}
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
