"""Hotkeys on disk, in the standard Bittensor wallet layout.

A node's identity is its hotkey. Keeping it where btcli keeps it,
``<root>/<wallet>/hotkeys/<hotkey>`` with the unencrypted JSON keyfile that
btcli/btwallet write (``accountId``, ``publicKey``, ``privateKey``,
``secretPhrase``, ``secretSeed``, ``ss58Address``, plus ``cryptoType`` in
bittensor 11), means a miner runs the node with the hotkey they already
registered, and a key created here can be registered with btcli as is.
Serialization is the SDK's own, so the format cannot drift from btcli's.

bittensor 11 reads no environment variable for the wallet root (it is a fixed
default, ``~/.bittensor/wallets``), so neither does this module: pass ``root``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from bittensor.sp_core import (
    CRYPTO_SR25519,
    Keypair,
    keyfile_data_is_encrypted,
    serialized_keypair_to_keyfile_data,
)

from node.fsutil import atomic_write

DEFAULT_WALLET_ROOT = Path.home() / ".bittensor" / "wallets"

# A real hotkey file is about 500 bytes; anything far larger is not one, and is
# not read into memory.
MAX_KEYFILE_BYTES = 4096

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX64 = re.compile(r"0x[0-9a-fA-F]{128}")
_STRING_FIELDS = (
    "accountId",
    "publicKey",
    "privateKey",
    "secretPhrase",
    "secretSeed",
    "ss58Address",
)


class KeyfileError(ValueError):
    """A hotkey file exists but is not a usable unencrypted sr25519 hotkey."""


def hotkey_path(wallet: str, hotkey: str = "default", root: Path = DEFAULT_WALLET_ROOT) -> Path:
    """Where btcli keeps hotkey ``hotkey`` of wallet ``wallet``."""
    for kind, name in (("wallet", wallet), ("hotkey", hotkey)):
        # Names become path components: nothing may climb out of ``root``.
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"invalid {kind} name {name!r}")
    return Path(root).expanduser() / wallet / "hotkeys" / hotkey


def new_hotkey(
    wallet: str,
    hotkey: str = "default",
    root: Path = DEFAULT_WALLET_ROOT,
    overwrite: bool = False,
    seed: bytes | None = None,
) -> Keypair:
    """Generate a hotkey (12-word mnemonic, sr25519) and save it unencrypted.

    An existing key is an identity that may hold a registration and stake, so
    it is only replaced with ``overwrite=True``; otherwise FileExistsError.
    Also writes ``<hotkey>pub.txt``, the public-only file btcli writes next to
    it. A 32-byte `seed` instead gives a reproducible key: for demos, whose
    runs should assign the same pages every time so that they can be compared.
    """
    path = hotkey_path(wallet, hotkey, root)
    keypair = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12)) if seed is None else Keypair.create_from_seed(seed)
    public = Keypair(ss58_address=keypair.ss58_address, public_key=bytes(keypair.public_key))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        atomic_write(path, bytes(serialized_keypair_to_keyfile_data(keypair)), mode=0o600, overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"hotkey {path} already exists; pass overwrite=True to replace it (the old key is lost)") from None
    public_data = bytes(serialized_keypair_to_keyfile_data(public))
    atomic_write(path.with_name(f"{hotkey}pub.txt"), public_data, mode=0o600)
    return keypair


def load_hotkey(wallet: str, hotkey: str = "default", root: Path = DEFAULT_WALLET_ROOT) -> Keypair:
    """Load a hotkey written by :func:`new_hotkey` or by btcli.

    Raises FileNotFoundError if there is none, KeyfileError if the file is
    not a well-formed unencrypted sr25519 hotkey whose fields agree with each
    other.
    """
    path = hotkey_path(wallet, hotkey, root)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"no hotkey at {path}; create one with `btcli wallet new_hotkey` or gradswarm") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyfileError(f"{path} is not a regular file")
        data = os.read(fd, MAX_KEYFILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEYFILE_BYTES:
        raise KeyfileError(f"{path} is larger than {MAX_KEYFILE_BYTES} bytes; not a hotkey file")
    try:
        return _parse_keyfile(data)
    except KeyfileError as e:
        raise KeyfileError(f"{path}: {e}") from None


def _parse_keyfile(data: bytes) -> Keypair:
    """The keypair in ``data``, after checking every field it carries.

    The SDK's own loader trusts the first secret it finds; here every secret
    and every public field must describe the same key, so a hand-edited or
    corrupted file fails loudly instead of silently becoming another identity.
    """
    if keyfile_data_is_encrypted(data):
        raise KeyfileError("hotkey is encrypted; gradswarm signs unattended and needs an unencrypted hotkey (btcli's default for hotkeys)")
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeyfileError(f"not a JSON keyfile ({e})") from None
    if not isinstance(obj, dict):
        raise KeyfileError("keyfile JSON is not an object")
    # Unknown fields are tolerated: a newer btwallet may add some.
    fields = {k: obj[k] for k in _STRING_FIELDS if obj.get(k) is not None}
    for name, value in fields.items():
        if not isinstance(value, str):
            raise KeyfileError(f"field {name} must be a string")
    crypto_type = obj.get("cryptoType", CRYPTO_SR25519)
    if type(crypto_type) is not int or crypto_type != CRYPTO_SR25519:
        raise KeyfileError(f"cryptoType {crypto_type!r} is not sr25519 ({CRYPTO_SR25519})")

    candidates: list[Keypair] = []
    try:
        if "secretPhrase" in fields:
            candidates.append(Keypair.create_from_mnemonic(fields["secretPhrase"]))
        if "secretSeed" in fields:
            if not _HEX32.fullmatch(fields["secretSeed"]):
                raise KeyfileError("secretSeed is not 0x + 32 bytes of hex")
            candidates.append(Keypair.create_from_seed(bytes.fromhex(fields["secretSeed"][2:])))
        if "privateKey" in fields:
            if not _HEX64.fullmatch(fields["privateKey"]):
                raise KeyfileError("privateKey is not 0x + 64 bytes of hex")
            candidates.append(Keypair.create_from_private_key(fields["privateKey"]))
    except (ValueError, TypeError) as e:
        raise KeyfileError(f"invalid key material: {e}") from None
    if not candidates:
        raise KeyfileError("no secretPhrase, secretSeed or privateKey: a hotkey must be able to sign")
    keypair = candidates[0]
    if any(k.ss58_address != keypair.ss58_address for k in candidates[1:]):
        raise KeyfileError("secretPhrase, secretSeed and privateKey describe different keys")
    public_hex = "0x" + bytes(keypair.public_key).hex()
    for name in ("publicKey", "accountId"):
        if name in fields and fields[name].lower() != public_hex:
            raise KeyfileError(f"{name} does not match the secret key")
    if "ss58Address" in fields and fields["ss58Address"] != keypair.ss58_address:
        raise KeyfileError("ss58Address does not match the secret key")
    return keypair
