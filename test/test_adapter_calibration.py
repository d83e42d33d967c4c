"""calibrate() measures steady-state times: the one-off cost of a fresh model's first step is not kept."""

import itertools

from adapter_helpers import UNGATED
from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.default_models import RECIPES
from ttt_perception.model import build_model


def test_calibrate_discards_the_warm_up_step():
    durations = itertools.chain([5.0], itertools.repeat(0.05))  # the first step: 5 s of one-off costs
    now = [0.0]

    def clock():
        return now[0]

    adapter = TestTimeAdapter(build_model(RECIPES["detector"].model, seed=0),
                              AdaptationConfig(**UNGATED, mode="online", budget_ms=200), "cpu", clock=clock)
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


def test_warm_up_calibrates_until_times_settle_and_leaves_the_weights():
    """Rounds go on while each is much faster than the one before (a cold model, busy threads)."""
    import torch

    from ttt_perception.warm_start import warm_up

    adapter = TestTimeAdapter(build_model(RECIPES["detector"].model, seed=0),
                              AdaptationConfig(**UNGATED, mode="online", budget_ms=100), "cpu")
    measured_calibrate = adapter.calibrate
    rounds = iter([{"step_ms": 900.0, "predict_ms": 300.0}, {"step_ms": 400.0, "predict_ms": 90.0},
                   {"step_ms": 100.0, "predict_ms": 30.0}, {"step_ms": 95.0, "predict_ms": 31.0},
                   {"step_ms": 10.0, "predict_ms": 1.0}])

    def calibrate():
        measured_calibrate()  # the real measurement (weights restored), reported as the cold sequence
        return next(rounds)

    adapter.calibrate = calibrate
    before = {name: p.detach().clone() for name, p in adapter.model.named_parameters()}
    result = warm_up(adapter)
    assert result == {"step_ms": 95.0, "predict_ms": 31.0, "rounds": 4}
    assert adapter.timings.estimate(adapter._step_kind()) is not None
    for name, p in adapter.model.named_parameters():
        assert torch.equal(p, before[name]), name
