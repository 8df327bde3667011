"""The `gradswarm` command as an operator meets it: exit codes and messages."""

from node.cli import main
from node.config import ChainSpec, NodeConfig, RunSpec, render_run_file
from node.keys import load_hotkey


def test_keys_new_creates_a_loadable_hotkey_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keys", "new", "--name", "miner", "--wallet-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    keypair = load_hotkey("miner", "default", tmp_path)
    assert keypair.ss58_address in out
    assert (tmp_path / "miner" / "hotkeys" / "default").stat().st_mode & 0o777 == 0o600
    assert main(["keys", "new", "--name", "miner", "--wallet-root", str(tmp_path)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert load_hotkey("miner", "default", tmp_path).ss58_address == keypair.ss58_address


def test_node_run_refuses_an_unregistered_hotkey(tmp_path, spec, capsys):
    assert main(["keys", "new", "--name", "w", "--wallet-root", str(tmp_path)]) == 0
    config = tmp_path / "run.toml"
    config.write_text(render_run_file(spec, NodeConfig(wallet="w", wallet_root=str(tmp_path), data_dir=str(tmp_path / "d"))))
    capsys.readouterr()
    assert main(["node", "run", "--config", str(config)]) == 2
    assert "not registered" in capsys.readouterr().err


def test_node_run_with_a_bad_config_says_what_is_wrong(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[train]\ninner_steps = -1.5\n")
    assert main(["node", "run", "--config", str(config)]) == 2
    assert "train.inner_steps must be int" in capsys.readouterr().err
    assert main(["node", "run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_node_run_with_a_missing_chain(tmp_path, capsys):
    assert main(["keys", "new", "--name", "w", "--wallet-root", str(tmp_path)]) == 0
    config = tmp_path / "run.toml"
    spec = RunSpec(chain=ChainSpec(kind="dev", path=str(tmp_path / "nope.sqlite")))
    config.write_text(render_run_file(spec, NodeConfig(wallet="w", wallet_root=str(tmp_path))))
    capsys.readouterr()
    assert main(["node", "run", "--config", str(config)]) == 2
    assert "nope.sqlite" in capsys.readouterr().err


def test_help_lists_every_role(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("node", "keys", "bootstrap", "demo"):
        assert command in text
