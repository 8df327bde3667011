import json
import stat

import bittensor as bt
import pytest
from bittensor.sp_core import Keypair

from node.keys import (
    MAX_KEYFILE_BYTES,
    KeyfileError,
    hotkey_path,
    load_hotkey,
    new_hotkey,
)

BTWALLET_FIELDS = {
    "accountId",
    "publicKey",
    "privateKey",
    "secretPhrase",
    "secretSeed",
    "ss58Address",
}


def test_round_trip(tmp_path):
    created = new_hotkey("miner", "hk1", root=tmp_path)
    loaded = load_hotkey("miner", "hk1", root=tmp_path)
    assert loaded.ss58_address == created.ss58_address
    signature = loaded.sign(b"message")
    assert Keypair(ss58_address=created.ss58_address).verify(b"message", signature)


def test_layout_format_and_mode(tmp_path):
    created = new_hotkey("miner", root=tmp_path)
    path = tmp_path / "miner" / "hotkeys" / "default"
    assert hotkey_path("miner", root=tmp_path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_bytes())
    assert set(doc) >= BTWALLET_FIELDS
    assert doc["ss58Address"] == created.ss58_address
    assert doc["publicKey"] == doc["accountId"] == "0x" + bytes(created.public_key).hex()
    assert len(doc["secretPhrase"].split()) == 12
    pub = json.loads((path.parent / "defaultpub.txt").read_bytes())
    assert pub["ss58Address"] == created.ss58_address
    assert "privateKey" not in pub and "secretPhrase" not in pub
    # Nothing half-written left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["default", "defaultpub.txt"]


def test_bittensor_wallet_reads_our_key(tmp_path):
    created = new_hotkey("miner", "hk", root=tmp_path)
    wallet = bt.Wallet("miner", "hk", path=str(tmp_path))
    assert wallet.hotkey.ss58_address == created.ss58_address
    assert wallet.hotkeypub.ss58_address == created.ss58_address


def test_we_read_bittensor_wallet_key(tmp_path):
    wallet = bt.Wallet("miner", "hk", path=str(tmp_path))
    wallet.create_new_hotkey(use_password=False, suppress=True)
    assert load_hotkey("miner", "hk", root=tmp_path).ss58_address == wallet.hotkey.ss58_address


def test_refuses_to_overwrite_unless_asked(tmp_path):
    first = new_hotkey("miner", root=tmp_path)
    path = hotkey_path("miner", root=tmp_path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        new_hotkey("miner", root=tmp_path)
    assert path.read_bytes() == before
    assert load_hotkey("miner", root=tmp_path).ss58_address == first.ss58_address
    second = new_hotkey("miner", root=tmp_path, overwrite=True)
    assert second.ss58_address != first.ss58_address
    assert load_hotkey("miner", root=tmp_path).ss58_address == second.ss58_address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["default", "defaultpub.txt"]


def test_missing_key_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no hotkey at"):
        load_hotkey("nobody", root=tmp_path)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../../etc"])
def test_names_cannot_escape_the_root(tmp_path, name):
    with pytest.raises(ValueError):
        hotkey_path(name, root=tmp_path)
    with pytest.raises(ValueError):
        new_hotkey("miner", name, root=tmp_path)


def _valid_doc(tmp_path) -> dict:
    new_hotkey("template", root=tmp_path)
    return json.loads(hotkey_path("template", root=tmp_path).read_bytes())


def _write(tmp_path, data: bytes) -> None:
    path = hotkey_path("bad", root=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


OTHER = Keypair.create_from_uri("//Other")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"not json", "not a JSON keyfile"),
        (lambda d: b"\xff\xfe\x00", "not a JSON keyfile"),
        (lambda d: b"[1, 2]", "not an object"),
        (lambda d: b"$NACL" + b"\x00" * 64, "encrypted"),
        (lambda d: b"{" + b" " * MAX_KEYFILE_BYTES + b"}", "larger than"),
        (lambda d: json.dumps({"ss58Address": d["ss58Address"]}).encode(), "must be able to sign"),
        (lambda d: json.dumps({**d, "ss58Address": OTHER.ss58_address}).encode(), "ss58Address"),
        (lambda d: json.dumps({**d, "publicKey": "0x" + "00" * 32}).encode(), "publicKey"),
        (lambda d: json.dumps({**d, "secretSeed": "0x" + "11" * 32}).encode(), "different keys"),
        (lambda d: json.dumps({**d, "secretSeed": "0x1234"}).encode(), "secretSeed"),
        (lambda d: json.dumps({**d, "secretPhrase": 42}).encode(), "must be a string"),
        (lambda d: json.dumps({**d, "secretPhrase": "not a mnemonic"}).encode(), "invalid key"),
        (lambda d: json.dumps({**d, "cryptoType": 0}).encode(), "sr25519"),
    ],
)
def test_malformed_keyfile_is_a_clear_error(tmp_path, mutate, message):
    _write(tmp_path, mutate(_valid_doc(tmp_path)))
    with pytest.raises(KeyfileError, match=message) as excinfo:
        load_hotkey("bad", root=tmp_path)
    assert str(hotkey_path("bad", root=tmp_path)) in str(excinfo.value)


def test_any_single_secret_is_enough(tmp_path):
    doc = _valid_doc(tmp_path)
    for secret in ("secretPhrase", "secretSeed", "privateKey"):
        _write(tmp_path, json.dumps({secret: doc[secret]}).encode())
        assert load_hotkey("bad", root=tmp_path).ss58_address == doc["ss58Address"]


def test_directory_in_place_of_keyfile_is_rejected(tmp_path):
    hotkey_path("bad", root=tmp_path).mkdir(parents=True)
    with pytest.raises(KeyfileError, match="not a regular file"):
        load_hotkey("bad", root=tmp_path)


def test_a_seeded_hotkey_is_the_same_identity_every_time(tmp_path):
    seed = bytes(range(32))
    first = new_hotkey("a", "default", tmp_path, seed=seed)
    second = new_hotkey("b", "default", tmp_path, seed=seed)
    assert first.ss58_address == second.ss58_address == load_hotkey("b", "default", tmp_path).ss58_address
    assert new_hotkey("c", "default", tmp_path).ss58_address != first.ss58_address  # no seed: a fresh key
