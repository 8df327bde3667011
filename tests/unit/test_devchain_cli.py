"""`gradswarm devchain`: a dev chain made, filled and read from the command line only."""

from pathlib import Path

import pytest

from node.chain import DevChain
from node.cli import main
from node.config import ChainSpec, NodeConfig, RunSpec, render_run_file
from node.keys import new_hotkey
from tests.support import keypair

ALICE, BOB = keypair("Alice"), keypair("Bob")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["devchain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_file(tmp_path: Path, chain: Path, **node) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(render_run_file(RunSpec(chain=ChainSpec(kind="dev", path=str(chain))), NodeConfig(**node)))
    return path


def test_init_register_stake_show(tmp_path, capsys):
    db = str(tmp_path / "chain.db")
    code, out, _ = run(
        capsys, "init", "--path", db, "--block-time", "2", "--max-validators", "1", "--netuid", "7", "--genesis-time", "1000"
    )
    assert code == 0 and "created dev chain" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.db"]  # no temporary file left beside it

    code, out, _ = run(capsys, "register", "--path", db, "--hotkey", ALICE.ss58_address)
    assert code == 0 and out.startswith("uid 0 ")
    bob = new_hotkey("lab", "node1", tmp_path / "wallets")
    code, out, _ = run(
        capsys, "register", "--path", db, "--wallet", "lab", "--wallet-hotkey", "node1", "--wallet-root", str(tmp_path / "wallets")
    )
    assert code == 0 and out.startswith(f"uid 1 {bob.ss58_address}")
    code, out, _ = run(capsys, "register", "--path", db, "--hotkey", ALICE.ss58_address)  # idempotent
    assert code == 0 and out.startswith("uid 0 ") and "already registered" in out

    assert run(capsys, "stake", "--path", db, "--hotkey", ALICE.ss58_address, "--amount", "10")[0] == 0
    assert run(capsys, "stake", "--path", db, "--hotkey", ALICE.ss58_address, "--amount", "2.5")[0] == 0
    code, out, _ = run(capsys, "stake", "--path", db, "--hotkey", bob.ss58_address, "--amount", "3")
    assert code == 0 and "stake 3" in out and "does not hold a validator permit" in out

    chain = DevChain(db)
    assert (chain.genesis_time, chain.block_time, chain.netuid, chain.max_validators) == (1000.0, 2.0, 7, 1)
    assert [(n.uid, n.hotkey, n.stake, n.validator_permit) for n in chain.neurons()] == [
        (0, ALICE.ss58_address, 12.5, True),
        (1, bob.ss58_address, 3.0, False),
    ]
    chain.set_weights(ALICE, [0, 1], [1.0, 3.0])
    chain.set_commitment(ALICE, b"\x01\x02binding")

    code, out, _ = run(capsys, "show", "--path", db)
    assert code == 0
    assert "1970-01-01T00:16:40+00:00" in out and "block time     2 s" in out
    assert "netuid         7" in out and "max validators 1" in out and "neurons        2" in out
    assert f"current block  {chain.block()}" in out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert rows[ALICE.ss58_address][:4] == ["0", ALICE.ss58_address, "12.5", "yes"]
    assert rows[ALICE.ss58_address][5:] == ["2", "uids", "9", "B", "010262696e64696e"]
    assert rows[bob.ss58_address][:4] == ["1", bob.ss58_address, "3", "no"]
    assert rows[bob.ss58_address][5:] == ["-", "-"]


def test_commands_take_the_chain_and_the_hotkey_from_a_run_file(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    key = new_hotkey("w", "node0", wallets)
    config = str(run_file(tmp_path, tmp_path / "shared.db", wallet="w", hotkey="node0", wallet_root=str(wallets)))
    assert run(capsys, "init", "--config", config)[0] == 0
    assert (tmp_path / "shared.db").is_file()
    code, out, _ = run(capsys, "register", "--config", config)  # the [node] wallet's hotkey
    assert code == 0 and out.startswith(f"uid 0 {key.ss58_address}")
    assert run(capsys, "register", "--config", config, "--hotkey", BOB.ss58_address)[0] == 0
    assert run(capsys, "stake", "--config", config, "--amount", "4")[0] == 0
    code, out, _ = run(capsys, "show", "--config", config)
    assert code == 0 and key.ss58_address in out and BOB.ss58_address in out
    assert {n.hotkey: n.stake for n in DevChain(tmp_path / "shared.db").neurons()} == {key.ss58_address: 4.0, BOB.ss58_address: 0.0}


def test_init_refuses_to_overwrite(tmp_path, capsys):
    db = tmp_path / "chain.db"
    assert run(capsys, "init", "--path", str(db))[0] == 0
    assert run(capsys, "register", "--path", str(db), "--hotkey", ALICE.ss58_address)[0] == 0
    code, _, err = run(capsys, "init", "--path", str(db))
    assert code == 2 and err.startswith("error: ") and "refusing to overwrite" in err
    assert [n.hotkey for n in DevChain(db).neurons()] == [ALICE.ss58_address]  # the old chain is intact
    other = tmp_path / "notes.txt"
    other.write_bytes(b"precious")
    assert run(capsys, "init", "--path", str(other))[0] == 2
    assert other.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "hotkey",
    [
        "",
        "5notanaddress",
        ALICE.ss58_address[:-1] + ("R" if ALICE.ss58_address[-1] != "R" else "S"),  # bad checksum
        ALICE.ss58_address.lower(),
        "0x" + "00" * 32,
        "5" * 10_000,
        "\x00\n",
    ],
)
def test_bad_hotkeys_are_refused_in_one_line(tmp_path, capsys, hotkey):
    db = str(tmp_path / "chain.db")
    assert run(capsys, "init", "--path", db)[0] == 0
    for action in (["register"], ["stake", "--amount", "1"]):
        code, out, err = run(capsys, *action, "--path", db, "--hotkey", hotkey)
        assert code == 2 and out == ""
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert len(err) < 300
    assert DevChain(db).neurons() == []


@pytest.mark.parametrize("amount", ["-1", "0", "nan", "inf", "-inf", "1e400", "ten", ""])
def test_bad_stake_amounts_are_refused(tmp_path, capsys, amount):
    db = str(tmp_path / "chain.db")
    assert run(capsys, "init", "--path", db)[0] == 0
    assert run(capsys, "register", "--path", db, "--hotkey", ALICE.ss58_address)[0] == 0
    code, _, err = run(capsys, "stake", "--path", db, "--hotkey", ALICE.ss58_address, f"--amount={amount}")
    assert code == 2 and err.startswith("error: --amount") and err.count("\n") == 1
    assert DevChain(db).neurons()[0].stake == 0


def test_stake_on_an_unregistered_hotkey_names_the_fix(tmp_path, capsys):
    db = str(tmp_path / "chain.db")
    assert run(capsys, "init", "--path", db)[0] == 0
    code, _, err = run(capsys, "stake", "--path", db, "--hotkey", ALICE.ss58_address, "--amount", "1")
    assert code == 2 and "not registered" in err and "devchain register" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--block-time", "nan"], "--block-time"),
        (["--block-time", "-1"], "--block-time"),
        (["--max-validators", "0"], "--max-validators"),
        (["--max-validators", "99999999999999999999999"], "--max-validators"),
        (["--netuid", "-1"], "--netuid"),
        (["--genesis-time", "-5"], "--genesis-time"),
        (["--genesis-time", "2024-01-01T00:00:00"], "time zone"),
        (["--genesis-time", "yesterday"], "--genesis-time"),
    ],
)
def test_init_refuses_bad_parameters_and_creates_nothing(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "init", "--path", str(tmp_path / "chain.db"), *argv)
    assert code == 2 and err.startswith("error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_init_accepts_an_iso_genesis_time(tmp_path, capsys):
    db = tmp_path / "chain.db"
    assert run(capsys, "init", "--path", str(db), "--genesis-time", "2024-01-01T00:00:00Z")[0] == 0
    assert DevChain(db).genesis_time == 1704067200.0


def test_missing_files_give_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "missing.db"
    for argv in (["show"], ["register", "--hotkey", ALICE.ss58_address], ["stake", "--hotkey", ALICE.ss58_address, "--amount", "1"]):
        code, _, err = run(capsys, *argv, "--path", str(missing))
        assert code == 2 and err.count("\n") == 1
        assert f"no dev chain at {missing}" in err and f"gradswarm devchain init --path {missing}" in err
    assert not missing.exists()
    code, _, err = run(capsys, "init", "--path", str(tmp_path / "no" / "such" / "chain.db"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "show", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "register", "--path", str(missing), "--wallet", "nobody", "--wallet-root", str(tmp_path))
    assert code == 2 and "no hotkey at" in err
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a chain")
    code, _, err = run(capsys, "show", "--path", str(garbage))
    assert code == 2 and "not a readable dev chain" in err


def test_a_run_file_on_another_chain_or_none_is_refused(tmp_path, capsys):
    config = tmp_path / "bt.toml"
    config.write_text(render_run_file(RunSpec(chain=ChainSpec(kind="bittensor", network="local", netuid=2)), NodeConfig()))
    code, _, err = run(capsys, "init", "--config", str(config))
    assert code == 2 and 'kind = "dev"' in err
    config.write_text(render_run_file(RunSpec(chain=ChainSpec(kind="dev", path="")), NodeConfig()))
    code, _, err = run(capsys, "show", "--config", str(config))
    assert code == 2 and "has no path" in err


def test_node_and_bootstrap_name_devchain_init_for_a_missing_chain(tmp_path, capsys):
    missing = tmp_path / "lab-chain.db"
    wallets = tmp_path / "wallets"
    new_hotkey("w", "default", wallets)
    config = run_file(tmp_path, missing, wallet="w", wallet_root=str(wallets), data_dir=str(tmp_path / "data"))
    fix = f"gradswarm devchain init --path {missing}"
    assert main(["node", "run", "--config", str(config)]) == 2
    assert fix in capsys.readouterr().err
    assert main(["bootstrap", "run", "--run", str(config), "--identity", str(tmp_path / "boot.key")]) == 2
    assert fix in capsys.readouterr().err
    assert not missing.exists()


def _register_from_a_process(args):
    path, name = args
    return DevChain(Path(path)).register(keypair(name).ss58_address)


def test_a_shared_chain_uses_the_rollback_journal_and_takes_writers_from_several_processes(tmp_path, capsys):
    """`--shared` is for a file several hosts open: no WAL index to share, only file locks."""
    import multiprocessing as mp
    import sqlite3

    path = tmp_path / "chain.sqlite"
    assert main(["devchain", "init", "--path", str(path), "--shared"]) == 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    names = [f"Node{i}" for i in range(6)]
    with mp.get_context("spawn").Pool(3) as pool:
        uids = pool.map(_register_from_a_process, [(str(path), n) for n in names])
    assert sorted(uids) == list(range(6))
    assert not (tmp_path / "chain.sqlite-wal").exists()
    plain = tmp_path / "plain.sqlite"
    assert main(["devchain", "init", "--path", str(plain)]) == 0
    conn = sqlite3.connect(plain)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
