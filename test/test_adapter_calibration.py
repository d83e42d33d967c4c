"""calibrate() measures steady-state times: the one-off cost of a fresh model's first step is not kept."""

import itertools

from ttt_perception.adapter import AdaptationConfig, TestTimeAdapter
from ttt_perception.default_models import RECIPES
from ttt_perception.model import build_model


def test_calibrate_discards_the_warm_up_step():
    durations = itertools.chain([5.0], itertools.repeat(0.05))  # the first step: 5 s of one-off costs
    now = [0.0]

    def clock():
        return now[0]

    adapter = TestTimeAdapter(build_model(RECIPES["detector"].model, seed=0),
                              AdaptationConfig(mode="online", budget_ms=200), "cpu", clock=clock)
    original_step = adapter._step

    def slow_first_step(x, state):
        began = now[0]
        value = original_step(x, state)  # records clock() - began, i.e. 0 ...
        now[0] = began + next(durations)
        adapter.timings.record(adapter._step_kind(), now[0] - began)  # ... and the simulated duration
        return value

    adapter._step = slow_first_step
    times = adapter.calibrate(repeats=3)
    assert abs(times["step_ms"] - 50.0) < 1e-6  # not 4 s (the 0.9 quantile with the 5 s warm-up step kept)
