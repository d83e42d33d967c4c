"""NextFrameClock: when the worker's next frame is due, from the cameras' arrivals."""

import pytest

from ttt_perception.ros.next_frame import NextFrameClock


def test_nothing_is_known_before_a_camera_has_two_frames():
    clock = NextFrameClock()
    assert clock.next_due(0.0) is None
    clock.arrived("front", 1.0)
    assert clock.next_due(1.0) is None and clock.period("front") is None


def test_the_median_interval_ignores_one_late_frame():
    clock = NextFrameClock()
    for t in (0.0, 0.1, 0.2, 0.5, 0.6, 0.7):  # 0.3 s gap: one frame lost
        clock.arrived("front", t)
    assert clock.period("front") == pytest.approx(0.1)
    assert clock.next_due(0.72) == pytest.approx(0.8)


def test_a_late_camera_counts_from_its_next_beat_and_a_stopped_one_not_at_all():
    clock = NextFrameClock()
    for t in (0.0, 0.5, 1.0):
        clock.arrived("rear", t)
    assert clock.next_due(1.2) == pytest.approx(1.5)
    assert clock.next_due(1.7) == pytest.approx(2.0)  # one frame late: not in the past
    assert clock.next_due(10.2) is None  # silent for 18 periods: stopped
    clock.arrived("front", 10.0)
    clock.arrived("front", 10.1)
    assert clock.next_due(10.15) == pytest.approx(10.2)  # the stopped camera does not cut it short


def test_the_earliest_camera_bounds_the_idle_time():
    clock = NextFrameClock()
    for t in (0.0, 0.1, 0.2):
        clock.arrived("front", t)  # 10 Hz: next at 0.3
    for t in (0.05, 0.30):
        clock.arrived("rear", t)  # 4 Hz: next at 0.55
    assert clock.next_due(0.25) == pytest.approx(0.3)
    clock.forget()
    assert clock.next_due(0.25) is None
