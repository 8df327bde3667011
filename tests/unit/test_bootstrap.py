"""The bootstrap daemon's parts that need no network: its identity file, its command's refusals,
/healthz from a snapshot, address parsing, and the counting record validator. The daemon itself
on loopback: tests/integration/test_bootstrap.py."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bootstrap.identity import IdentityError, ensure_identity
from bootstrap.stats import DHTStats, Snapshot
from bootstrap.validation import REASONS, CountingValidator
from bootstrap.web import health, parse_address
from node.chain import ChainError
from node.config import NodeConfig, render_run_file
from node.swarm import records
from tests.support.swarm import RUN, contribution, manifest, record_for

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's


def test_identity_is_created_private_and_kept(tmp_path):
    key = tmp_path / "state" / "p2p.key"
    first = ensure_identity(key)
    assert key.stat().st_mode & 0o777 == 0o600
    assert ensure_identity(key) == first
    key.chmod(0o644)  # an operator's copy with a loose umask is narrowed, not replaced
    assert ensure_identity(key) == first and key.stat().st_mode & 0o777 == 0o600
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(IdentityError):
        ensure_identity(tmp_path / "junk.key")


def test_bootstrap_command_rejects_bad_addresses(tmp_path, spec, capsys):
    from node.cli import main

    run_file = tmp_path / "run.toml"
    run_file.write_text(render_run_file(spec, NodeConfig()))
    base = ["bootstrap", "run", "--run", str(run_file), "--identity", str(tmp_path / "k")]
    assert main([*base, "--listen", "tcp/31337"]) == 2
    assert "Invalid MultiAddr" in capsys.readouterr().err
    assert main([*base, "--peer", "/ip4/127.0.0.1/tcp/1"]) == 2
    assert "/p2p/" in capsys.readouterr().err
    assert main([*base, "--http", "localhost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()  # refused before anything started


def test_healthz_turns_503_when_the_dht_process_stops_answering():
    stats = DHTStats(
        peers_connected=2, routing_table_peers=3, records_stored=4, records_cached=1, accepted=5, rejected=dict.fromkeys(REASONS, 0)
    )
    fresh = Snapshot("QmPeer", time.time() - 60, stats, time.time() - 1, 10, 20)
    status, body = health(fresh)
    assert status == 200 and body["status"] == "ok" and body["records_held"] == 5 and body["uptime_seconds"] >= 60
    status, stale = health(dataclasses.replace(fresh, dht_sampled_at=time.time() - 120))
    assert status == 503 and stale["status"] == "stale" and stale["dht_sample_age_seconds"] >= 119
    status, body = health(Snapshot("QmPeer", time.time(), None, 0.0, None, None))
    assert status == 503 and body["peers_connected"] is None


def test_http_address_parsing():
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address("[::1]:9100") == ("::1", 9100)
    for bad in ("9100", "host:", "host:port", "h:99999", ":80"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_every_rejection_reason_is_counted_and_acceptance_is_unchanged(tmp_path, chain, registered):
    alice, bob, eve = registered["Alice"], registered["Bob"], registered["Eve"]
    run = RUN
    v = CountingValidator(run, chain)
    plain = records.RunRecordValidator(run, chain)
    good = contribution(alice, run=run)

    cases = {
        "unsigned": record_for(dataclasses.replace(good, signature=b"")),
        "bad_signature": record_for(dataclasses.replace(good, signature=bytes(64))),
        "wrong_run": record_for(contribution(alice, run=b"\x08" * 32)),
        "unregistered": record_for(contribution(eve, run=run)),
        "no_permit": record_for(manifest(bob)),
        "misplaced": record_for(good, key=records.round_key(run, "contrib", 2)),
        "ttl": record_for(good, ttl=10 * records.MAX_RECORD_TTL),
        "malformed": record_for(good, value=b"\x00garbage"),
        "oversized": record_for(good, value=b"\x00" * (records.MAX_RECORD_VALUE_BYTES + 1)),
    }
    for reason, record in cases.items():
        assert not v.validate(record) and not plain.validate(record), reason
        assert v.rejected[reason] == 1, (reason, dict(v.rejected))
    v.validate(record_for(good, subkey=bob.ss58_address))
    assert v.rejected["misplaced"] == 2  # a subkey that is not the signer is misplaced too
    for record in (record_for(good), record_for(manifest(alice))):
        assert v.validate(record) and plain.validate(record)
    assert v.accepted == 2 and sum(v.rejected.values()) == 10
    for digest in range(2, 2 + records.STORE_CAP["contrib"]):  # Alice's round-1 contributions past the first
        v.validate(record_for(contribution(alice, run=run, digest=bytes([digest]) * 32)))
    assert v.rejected["store_cap"] == 1 and v.accepted == 2 + records.STORE_CAP["contrib"] - 1

    class DownChain:
        def neurons(self):
            raise ChainError("node unreachable")

    down = CountingValidator(run, DownChain())
    assert not down.validate(record_for(good)) and down.rejected == {"chain_unavailable": 1}


def test_a_bootstrap_with_the_run_clock_refuses_records_of_rounds_far_from_now(chain, registered):
    """Bootstraps store records too: without the clock one hotkey could fill them with far-future rounds."""
    alice = registered["Alice"]
    v = CountingValidator(RUN, chain, round_now=lambda: 7)
    assert v.validate(record_for(contribution(alice, round_=7)))
    assert not v.validate(record_for(contribution(alice, round_=7 + records.ROUNDS_AHEAD + 1)))
    assert v.accepted == 1 and v.rejected == {"out_of_window": 1}
