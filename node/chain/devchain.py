"""Embedded dev chain: a :class:`ChainView` on one sqlite file.

It lets a whole swarm run on one machine with no network and no tokens
(``make demo``, multi-process tests) while enforcing the rules the node relies
on from a real subnet: only registered hotkeys act, only the top stakers hold
validator permits, weights are quantized as Bittensor does, commitments are
size-bounded. Several processes may share the file: every call opens its own
short-lived connection, writes run in ``BEGIN IMMEDIATE`` transactions, and the
file is in WAL mode, so readers never block on writers.

A real subnet computes incentive with Yuma consensus once per epoch; the dev
chain has no epochs and reports, on every read, the stake-weighted share of
the permit holders' weights each neuron receives
(:func:`~node.chain.view.received_weights`)::

    incentive[u] = sum_v S_v * W_v[u] / sum_v S_v

over permit holders ``v`` that have set weights, ``S_v`` their stake and
``W_v`` their row normalized to sum 1: it sums to 1 over the subnet, or is 0
everywhere until a permit holder sets weights.

Its ChainView calls go through a :class:`~node.chain.guard.ChainGuard` like
the Bittensor adapter's: a locked or vanished file ("outage") is retried with
backoff while reads serve the last good answer.

A dev chain holds no secrets and trusts every process that can write its file;
it exists to exercise honest and dishonest *nodes*, not to resist an attacker
with local file access.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bittensor.sp_core import Keypair

from node.chain.guard import ChainGuard, RetryPolicy
from node.chain.view import (
    ChainError,
    ChainHealth,
    ChainUnavailable,
    Neuron,
    commitment_bytes,
    quantize_weights,
    received_weights,
)

# Bumped whenever the schema changes, so an old file fails clearly.
_FORMAT = "gradswarm-devchain/1"
# Writers queue behind each other; a demo with dozens of nodes must not see
# "database is locked" under normal contention.
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE chain (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    format TEXT NOT NULL,
    genesis_time REAL NOT NULL,
    block_time REAL NOT NULL,
    max_validators INTEGER NOT NULL,
    netuid INTEGER NOT NULL
);
CREATE TABLE neurons (
    uid INTEGER PRIMARY KEY,
    hotkey TEXT NOT NULL UNIQUE,
    stake REAL NOT NULL DEFAULT 0
);
CREATE TABLE weights (
    validator_uid INTEGER NOT NULL REFERENCES neurons (uid),
    uid INTEGER NOT NULL REFERENCES neurons (uid),
    value INTEGER NOT NULL CHECK (value BETWEEN 1 AND 65535),
    PRIMARY KEY (validator_uid, uid)
);
CREATE TABLE commitments (
    hotkey TEXT PRIMARY KEY REFERENCES neurons (hotkey),
    data BLOB NOT NULL
);
"""


class DevChain:
    """A local subnet in a sqlite file; see the module docstring.

    The object holds only the file's path, the chain's immutable parameters
    and its guard's cache, so it pickles (as its path; a worker process gets
    the default :class:`RetryPolicy`) and stays valid after ``fork``.
    """

    def __init__(self, path: str | Path, *, policy: RetryPolicy | None = None) -> None:
        self._path = Path(path).resolve()
        # mode=rw: opening a missing path must fail, not create an empty chain.
        self._uri = self._path.as_uri() + "?mode=rw"
        try:
            with self._transaction(write=False) as conn:
                row = conn.execute(
                    "SELECT format, genesis_time, block_time, max_validators, netuid"
                    " FROM chain"
                ).fetchone()
        except ChainError as e:
            raise ChainError(f"{self._path} is not a readable dev chain: {e}") from e
        if row is None or row[0] != _FORMAT:
            raise ChainError(f"{self._path} is not a {_FORMAT} file")
        _, self._genesis_time, self._block_time, self._max_validators, self._netuid = row
        self._guard = ChainGuard(repr(self), policy)

    def __reduce__(self) -> tuple[type[DevChain], tuple[str]]:
        return (DevChain, (str(self._path),))

    def __repr__(self) -> str:
        return f"DevChain({str(self._path)!r})"

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        block_time: float = 1.0,
        max_validators: int = 64,
        netuid: int = 1,
    ) -> DevChain:
        """Create a fresh chain whose genesis is now; refuse an existing path.

        The file is built under a temporary name and hard-linked into place,
        so no process ever opens a half-initialized chain and two concurrent
        creators cannot both win.
        """
        if not (math.isfinite(block_time) and block_time > 0):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time!r}")
        if operator.index(max_validators) < 1:
            raise ValueError(f"max_validators must be >= 1, got {max_validators!r}")
        if operator.index(netuid) < 0:
            raise ValueError(f"netuid must be >= 0, got {netuid!r}")
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"refusing to overwrite existing dev chain {path}")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT INTO chain VALUES (0, ?, ?, ?, ?, ?)",
                    (_FORMAT, time.time(), float(block_time), max_validators, netuid),
                )
                # Persistent in the file header: every later connection gets WAL.
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"refusing to overwrite existing dev chain {path}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return cls(path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def genesis_time(self) -> float:
        """Unix time of block 0; round schedules are anchored on it."""
        return self._genesis_time

    @property
    def block_time(self) -> float:
        """Seconds per block."""
        return self._block_time

    @property
    def netuid(self) -> int:
        return self._netuid

    # ChainView -------------------------------------------------------------

    def block(self) -> int:
        """Blocks elapsed since genesis by the wall clock (never negative)."""
        return max(0, math.floor((time.time() - self._genesis_time) / self._block_time))

    def neurons(self) -> list[Neuron]:
        return list(self._guard.read("neurons", self._read_neurons))

    def neuron(self, hotkey: str) -> Neuron | None:
        return next((n for n in self.neurons() if n.hotkey == hotkey), None)

    def set_weights(self, keypair: Keypair, uids: list[int], weights: list[float]) -> None:
        hotkey = _signing_hotkey(keypair)
        uids, values = quantize_weights(uids, weights)
        self._guard.write(
            f"set weights for {hotkey}", lambda: self._write_weights(hotkey, uids, values)
        )

    def weights(self) -> dict[int, dict[int, float]]:
        rows = self._guard.read("weights", self._read_weights)
        return {validator: dict(row) for validator, row in rows.items()}

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        data = commitment_bytes(data)
        hotkey = _signing_hotkey(keypair)
        self._guard.write(
            f"set the commitment of {hotkey}", lambda: self._write_commitment(hotkey, data)
        )

    def commitments(self) -> dict[str, bytes]:
        return dict(self._guard.read("commitments", self._read_commitments))

    def health(self) -> ChainHealth:
        return self._guard.health()

    # Guarded reads and writes: these touch the file --------------------------

    def _read_neurons(self) -> tuple[Neuron, ...]:
        with self._transaction(write=False) as conn:
            neurons = self._neurons(conn)
            rows = self._weight_rows(conn)
        received = received_weights(neurons, rows)
        return tuple(
            dataclasses.replace(n, incentive=received[n.uid], weight=received[n.uid])
            for n in neurons
        )

    def _read_weights(self) -> dict[int, dict[int, float]]:
        with self._transaction(write=False) as conn:
            return self._weight_rows(conn)

    def _read_commitments(self) -> dict[str, bytes]:
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT hotkey, data FROM commitments ORDER BY hotkey").fetchall()
        return {hotkey: bytes(data) for hotkey, data in rows}

    def _write_weights(self, hotkey: str, uids: list[int], values: list[int]) -> None:
        with self._transaction(write=True) as conn:
            neurons = self._neurons(conn)
            me = next((n for n in neurons if n.hotkey == hotkey), None)
            if me is None:
                raise ChainError(f"hotkey {hotkey} is not registered")
            if not me.validator_permit:
                raise ChainError(f"hotkey {hotkey} (uid {me.uid}) has no validator permit")
            unknown = sorted(set(uids) - {n.uid for n in neurons})
            if unknown:
                raise ChainError(f"weights name unregistered uids {unknown}")
            conn.execute("DELETE FROM weights WHERE validator_uid = ?", (me.uid,))
            conn.executemany(
                "INSERT INTO weights (validator_uid, uid, value) VALUES (?, ?, ?)",
                [(me.uid, uid, value) for uid, value in zip(uids, values)],
            )

    def _write_commitment(self, hotkey: str, data: bytes) -> None:
        with self._transaction(write=True) as conn:
            self._require_registered(conn, hotkey)
            conn.execute(
                "INSERT INTO commitments (hotkey, data) VALUES (?, ?)"
                " ON CONFLICT (hotkey) DO UPDATE SET data = excluded.data",
                (hotkey, data),
            )

    # Dev-only: on a real chain these are done with btcli ----------------------

    def register(self, hotkey: str) -> int:
        """Register ``hotkey`` and return its uid; re-registering returns the same uid.

        Uids are handed out sequentially from 0. Only canonical ss58 (format
        42) sr25519-sized addresses are accepted, so one key cannot hold two
        uids under two spellings.
        """
        _check_address(hotkey)
        with self._transaction(write=True) as conn:
            row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
            if row is not None:
                return row[0]
            (uid,) = conn.execute("SELECT COUNT(*) FROM neurons").fetchone()
            conn.execute("INSERT INTO neurons (uid, hotkey) VALUES (?, ?)", (uid, hotkey))
            return uid

    def add_stake(self, hotkey: str, amount: float) -> None:
        """Add ``amount`` to a registered hotkey's stake."""
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ChainError(f"stake amount must be a number, got {type(amount).__name__}")
        if not (math.isfinite(amount) and amount > 0):
            raise ChainError(f"stake amount must be finite and > 0, got {amount!r}")
        with self._transaction(write=True) as conn:
            self._require_registered(conn, hotkey)
            conn.execute(
                "UPDATE neurons SET stake = stake + ? WHERE hotkey = ?", (float(amount), hotkey)
            )

    # Internals -----------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction; sqlite failures surface as ChainError.

        Writes take the write lock up front (``BEGIN IMMEDIATE``) so that a
        read-then-write such as uid assignment cannot interleave with another
        process's. Operational failures (a file that is locked past the busy
        timeout, missing or unreadable) are this chain's outages:
        :class:`ChainUnavailable`.
        """
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as e:
            raise ChainUnavailable(f"cannot open dev chain {self._path}: {e}") from e
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise ChainUnavailable(f"dev chain {self._path}: {e}") from e
        except sqlite3.Error as e:
            raise ChainError(f"dev chain {self._path}: {e}") from e
        finally:
            conn.close()

    def _neurons(self, conn: sqlite3.Connection) -> list[Neuron]:
        rows = conn.execute("SELECT uid, hotkey, stake FROM neurons ORDER BY uid").fetchall()
        ranked = sorted((r for r in rows if r[2] > 0), key=lambda r: (-r[2], r[0]))
        permitted = {uid for uid, _, _ in ranked[: self._max_validators]}
        return [Neuron(uid, hotkey, stake, uid in permitted) for uid, hotkey, stake in rows]

    @staticmethod
    def _weight_rows(conn: sqlite3.Connection) -> dict[int, dict[int, float]]:
        rows = conn.execute(
            "SELECT validator_uid, uid, value FROM weights ORDER BY validator_uid, uid"
        ).fetchall()
        raw: dict[int, dict[int, int]] = {}
        for validator_uid, uid, value in rows:
            raw.setdefault(validator_uid, {})[uid] = value
        return {
            validator_uid: {uid: value / sum(row.values()) for uid, value in row.items()}
            for validator_uid, row in raw.items()
        }

    @staticmethod
    def _require_registered(conn: sqlite3.Connection, hotkey: str) -> None:
        if conn.execute("SELECT 1 FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone() is None:
            raise ChainError(f"hotkey {hotkey} is not registered")


def _check_address(hotkey: str) -> None:
    if not isinstance(hotkey, str):
        raise ChainError(f"hotkey must be an ss58 address string, got {type(hotkey).__name__}")
    try:
        canonical = Keypair(ss58_address=hotkey).ss58_address
    except (ValueError, TypeError) as e:
        raise ChainError(f"malformed hotkey {hotkey!r}: {e}") from e
    if canonical != hotkey:
        raise ChainError(f"hotkey {hotkey!r} is not in Bittensor's ss58 format; use {canonical}")


def _signing_hotkey(keypair: Keypair) -> str:
    """The keypair's address, once it has proved it holds the private key.

    A real chain only accepts extrinsics signed by the hotkey; checking the
    same here catches callers that pass a public-only keypair.
    """
    hotkey = keypair.ss58_address
    challenge = b"gradswarm devchain signer check " + secrets.token_bytes(16)
    try:
        valid = Keypair(ss58_address=hotkey).verify(challenge, keypair.sign(challenge))
    except (ValueError, TypeError) as e:
        raise ChainError(f"keypair {hotkey} cannot sign: {e}") from e
    if not valid:
        raise ChainError(f"keypair {hotkey} does not produce sr25519 signatures for its address")
    return hotkey
