"""The dev chain's sqlite file: its schema, how one is made, the open file
(:class:`DevFile`: its path, the parameters fixed at genesis, transactions on
it), and every query :class:`~node.chain.devchain.DevChain` runs on it.

Each query takes an open connection inside the transaction DevFile opened
for it, so a read-then-write (uid assignment, a permit check before a weight
row) cannot interleave with another process's. Refusals raise ChainError.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from node.chain.view import ChainError, ChainUnavailable, Neuron, received_weights

# Bumped whenever the schema changes, so an old file fails clearly.
FORMAT = "gradswarm-devchain/1"

# Writers queue behind each other; a demo with dozens of nodes must not see
# "database is locked" under normal contention.
_BUSY_TIMEOUT_S = 30.0

T = TypeVar("T")

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


def create(path: Path, *, genesis_time: float, block_time: float, max_validators: int, netuid: int, shared: bool = False) -> None:
    """Write a fresh chain file at ``path``, which must not exist.

    The file is built under a temporary name and hard-linked into place, so no
    process ever opens a half-initialized chain and two concurrent creators
    cannot both win. ``shared``: for a file several hosts open (NFS), kept in
    sqlite's rollback-journal mode, whose locks are file locks the network file
    system carries; WAL, the default, shares its index through memory of one host.
    """
    if path.exists():
        raise FileExistsError(f"refusing to overwrite existing dev chain {path}")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT INTO chain VALUES (0, ?, ?, ?, ?, ?)",
                (FORMAT, genesis_time, float(block_time), max_validators, netuid),
            )
            # Persistent in the file header: every later connection gets the same mode.
            conn.execute("PRAGMA journal_mode=DELETE" if shared else "PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(f"refusing to overwrite existing dev chain {path}") from None
    finally:
        tmp.unlink(missing_ok=True)


def header(conn: sqlite3.Connection) -> tuple[str, float, float, int, int] | None:
    """(format, genesis_time, block_time, max_validators, netuid), or None in an empty file."""
    return conn.execute("SELECT format, genesis_time, block_time, max_validators, netuid FROM chain").fetchone()


class DevFile:
    """An existing dev chain file, opened afresh for every transaction.

    It holds only the path and the parameters fixed at genesis, so it pickles
    as its path and stays valid after ``fork``.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path).resolve()
        # mode=rw: opening a missing path must fail, not create an empty chain.
        self._uri = self._path.as_uri() + "?mode=rw"
        try:
            row = self.query(header)
        except ChainError as e:
            if _missing(self._path):
                raise ChainError(f"no dev chain at {self._path}; create it with `gradswarm devchain init --path {self._path}`") from e
            raise ChainError(f"{self._path} is not a readable dev chain: {e}") from e
        if row is None or row[0] != FORMAT:
            raise ChainError(f"{self._path} is not a {FORMAT} file")
        _, self._genesis_time, self._block_time, self._max_validators, self._netuid = row

    def __reduce__(self) -> tuple[type[DevFile], tuple[str]]:
        return (type(self), (str(self._path),))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

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

    @property
    def max_validators(self) -> int:
        """How many of the top stakers hold a validator permit."""
        return self._max_validators

    def query(self, query: Callable[..., T], *args: Any, write: bool = False) -> T:
        """``query(conn, *args)`` in a transaction of its own."""
        with self._transaction(write=write) as conn:
            return query(conn, *args)

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
            conn = sqlite3.connect(self._uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
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


def _missing(path: Path) -> bool:
    """Whether nothing at all is at ``path`` (an unreadable folder is not "missing")."""
    try:
        path.lstat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


# Reads -----------------------------------------------------------------------


def neurons(conn: sqlite3.Connection, max_validators: int) -> tuple[Neuron, ...]:
    """Every neuron with its permit, and as incentive and weight the permit holders' verdict."""
    registered = _registered(conn, max_validators)
    received = received_weights(registered, weights(conn))
    return tuple(dataclasses.replace(n, incentive=received[n.uid], weight=received[n.uid]) for n in registered)


def weights(conn: sqlite3.Connection) -> dict[int, dict[int, float]]:
    rows = conn.execute("SELECT validator_uid, uid, value FROM weights ORDER BY validator_uid, uid").fetchall()
    raw: dict[int, dict[int, int]] = {}
    for validator_uid, uid, value in rows:
        raw.setdefault(validator_uid, {})[uid] = value
    return {validator_uid: {uid: value / sum(row.values()) for uid, value in row.items()} for validator_uid, row in raw.items()}


def commitments(conn: sqlite3.Connection) -> dict[str, bytes]:
    rows = conn.execute("SELECT hotkey, data FROM commitments ORDER BY hotkey").fetchall()
    return {hotkey: bytes(data) for hotkey, data in rows}


# Writes ----------------------------------------------------------------------


def set_weights(conn: sqlite3.Connection, hotkey: str, uids: list[int], values: list[int], max_validators: int) -> None:
    """Replace the weight row of ``hotkey``, which must hold a validator permit."""
    registered = _registered(conn, max_validators)
    me = next((n for n in registered if n.hotkey == hotkey), None)
    if me is None:
        raise ChainError(f"hotkey {hotkey} is not registered")
    if not me.validator_permit:
        raise ChainError(f"hotkey {hotkey} (uid {me.uid}) has no validator permit")
    unknown = sorted(set(uids) - {n.uid for n in registered})
    if unknown:
        raise ChainError(f"weights name unregistered uids {unknown}")
    conn.execute("DELETE FROM weights WHERE validator_uid = ?", (me.uid,))
    conn.executemany(
        "INSERT INTO weights (validator_uid, uid, value) VALUES (?, ?, ?)",
        [(me.uid, uid, value) for uid, value in zip(uids, values, strict=True)],
    )


def set_commitment(conn: sqlite3.Connection, hotkey: str, data: bytes) -> None:
    _require_registered(conn, hotkey)
    conn.execute(
        "INSERT INTO commitments (hotkey, data) VALUES (?, ?) ON CONFLICT (hotkey) DO UPDATE SET data = excluded.data",
        (hotkey, data),
    )


def register(conn: sqlite3.Connection, hotkey: str) -> int:
    """The uid of ``hotkey``, the next free one if it was not registered."""
    row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
    if row is not None:
        return row[0]
    (uid,) = conn.execute("SELECT COUNT(*) FROM neurons").fetchone()
    conn.execute("INSERT INTO neurons (uid, hotkey) VALUES (?, ?)", (uid, hotkey))
    return uid


def add_stake(conn: sqlite3.Connection, hotkey: str, amount: float) -> None:
    _require_registered(conn, hotkey)
    conn.execute("UPDATE neurons SET stake = stake + ? WHERE hotkey = ?", (amount, hotkey))


def _registered(conn: sqlite3.Connection, max_validators: int) -> list[Neuron]:
    """Neurons by uid; permits go to the top ``max_validators`` stakes, ties to the lower uid."""
    rows = conn.execute("SELECT uid, hotkey, stake FROM neurons ORDER BY uid").fetchall()
    ranked = sorted((r for r in rows if r[2] > 0), key=lambda r: (-r[2], r[0]))
    permitted = {uid for uid, _, _ in ranked[:max_validators]}
    return [Neuron(uid, hotkey, stake, uid in permitted) for uid, hotkey, stake in rows]


def _require_registered(conn: sqlite3.Connection, hotkey: str) -> None:
    if conn.execute("SELECT 1 FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone() is None:
        raise ChainError(f"hotkey {hotkey} is not registered")
