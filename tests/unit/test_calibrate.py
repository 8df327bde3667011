"""devnet/calibrate.py: the demo's H fills the train window of N nodes sharing the cores."""

from devnet.calibrate import FILL, Calibration, fit_steps
from node.config import RunSpec


def test_more_nodes_on_the_same_cores_get_fewer_steps_and_the_steps_get_pages_enough():
    spec = RunSpec()
    alone = Calibration(step_seconds_alone=0.1, processes=1, cores=2)
    crowded = Calibration(step_seconds_alone=0.1, processes=6, cores=2)
    assert alone.step_seconds == 0.1 * alone.overhead and crowded.step_seconds == 0.1 * 3 * crowded.overhead
    assert 1.0 < alone.overhead < crowded.overhead  # every node's verification shares the cores
    few, many = fit_steps(spec, 19.0, crowded), fit_steps(spec, 19.0, alone)
    assert few.train.inner_steps == int(FILL * 19.0 / crowded.step_seconds) < many.train.inner_steps
    t, data = many.train, many.data
    windows_per_pass = data.pages_per_round * data.page_tokens / (t.batch_size * t.seq_len)
    assert t.inner_steps / windows_per_pass <= 1.25 + 1e-9  # more steps read more pages, not the same ones again
    assert fit_steps(spec, 0.01, crowded).train.inner_steps == 1  # never zero steps
    assert fit_steps(spec, 0.01, crowded).data.pages_per_round == spec.data.pages_per_round
    assert alone.tokens_per_second_alone(spec) == spec.train.batch_size * spec.train.seq_len / 0.1
