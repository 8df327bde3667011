import pytest

from node.config import (
    ChainSpec,
    ConfigError,
    NodeConfig,
    RunSpec,
    parse_run_file,
    render_run_file,
)


def test_round_trip_and_run_id():
    spec = RunSpec(name="x")
    node = NodeConfig(bootstrap=("/ip4/127.0.0.1/tcp/1/p2p/Qm",), evaluate=True)
    spec2, node2 = parse_run_file(render_run_file(spec, node))
    assert spec2 == spec and node2 == node
    assert spec2.run_id == spec.run_id and len(spec.run_id) == 32


def test_node_section_does_not_change_run_id():
    spec = RunSpec()
    a, _ = parse_run_file(render_run_file(spec, NodeConfig(port=1)))
    b, _ = parse_run_file(render_run_file(spec, NodeConfig(port=2)))
    assert a.run_id == b.run_id
    c, _ = parse_run_file(render_run_file(RunSpec(name="other"), NodeConfig()))
    assert c.run_id != a.run_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\ninner_steps = 'many'\n", "train.inner_steps must be int"),
        ("[train]\ninner_stepz = 3\n", "unknown keys: inner_stepz"),
        ("[node]\nport = true\n", "node.port must be int"),
        ("[node]\nbootstrap = [1]\n", "list of strings"),
        ("[outer]\nlr = 'x'\n", "outer.lr must be a number"),
        ("model = 3\n", "must be a table"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_configs_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_run_file(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\ninner_steps = 0\n", "must be positive"),
        ("[schedule]\nround_seconds = -1\n", "round_seconds must be positive"),
        ("[node]\nport = 70000\n", "port must be in"),
        ("[node]\ncheckpoint_every = 0\n", "checkpoint_every must be positive"),
    ],
)
def test_out_of_range_values(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_run_file(text)


def test_where_the_chain_is_reached_does_not_change_run_id():
    base = RunSpec(chain=ChainSpec(kind="bittensor", network="finney", netuid=3))
    other_endpoint = RunSpec(chain=ChainSpec(kind="bittensor", network="wss://lite.example:443", netuid=3))
    assert base.run_id == other_endpoint.run_id
    assert RunSpec(chain=ChainSpec(kind="bittensor", network="finney", netuid=4)).run_id != base.run_id
    assert (
        RunSpec(chain=ChainSpec(kind="dev", path="/a/chain.sqlite")).run_id
        == RunSpec(chain=ChainSpec(kind="dev", path="/b/chain.sqlite")).run_id
    )
