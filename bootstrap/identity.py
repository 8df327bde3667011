"""The bootstrap's libp2p private key: created once, kept private, reused on every start.

The peer id derived from this key is part of the multiaddr that operators
publish, so losing or replacing the key breaks every node's bootstrap list.
hivemind would generate the key itself, but it writes the file with the
default umask and only then narrows it, so we create it here (same key
format as hivemind writes) with mode 0600 from the first byte on.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from hivemind.p2p import PeerID
from hivemind.proto import crypto_pb2
from hivemind.utils.crypto import RSAPrivateKey

from node.fsutil import atomic_write

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 16 << 10  # an RSA-2048 key is about 1.2 KiB


class IdentityError(ValueError):
    """An identity file that exists but cannot be used."""


def ensure_identity(path: Path) -> PeerID:
    """The peer id of the key at `path`, creating the key (mode 0600) if there is none.

    An existing key readable by group or others is narrowed to 0600 with a
    warning: it is a secret, and anyone holding it can impersonate this peer.
    """
    if not path.exists():
        key = crypto_pb2.PrivateKey(key_type=crypto_pb2.KeyType.RSA, data=RSAPrivateKey().to_bytes())
        try:
            atomic_write(path, key.SerializeToString(), mode=0o600, overwrite=False)
            log.info("created a new identity key at %s", path)
        except FileExistsError:
            pass  # another process created it meanwhile: use theirs
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(f"identity {path} is not a regular file")
    if info.st_size > MAX_KEY_BYTES:
        raise IdentityError(f"identity {path} is {info.st_size} bytes, not a libp2p private key")
    if info.st_mode & 0o077:
        log.warning("identity %s was readable by others (mode %o); narrowing it to 0600", path, info.st_mode & 0o777)
        path.chmod(0o600)
    try:
        return PeerID.from_identity(path.read_bytes())
    except Exception as e:  # protobuf or DER errors of many types
        raise IdentityError(f"identity {path} is not a libp2p private key: {e}") from None
