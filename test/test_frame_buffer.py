"""Latest-frame-only slots and the worker thread (no ROS graph needed)."""

import threading

from ttt_perception.ros.frame_buffer import LatestFrameSlots
from ttt_perception.ros.worker import FrameWorker


def test_a_waiting_frame_is_replaced_and_counted():
    slots = LatestFrameSlots(["a"])
    assert slots.put("a", 1) is None
    assert slots.put("a", 2) == 1
    assert slots.put("a", 3) == 2
    assert slots.dropped("a") == 2
    assert slots.take(timeout=0) == ("a", 3)
    assert slots.take(timeout=0) is None
    assert slots.dropped("a") == 2


def test_cameras_are_served_in_arrival_order_and_a_busy_camera_keeps_its_place():
    ticks = iter(range(100))
    slots = LatestFrameSlots(["a", "b"], clock=lambda: next(ticks))
    slots.put("a", "a1")
    slots.put("b", "b1")
    slots.put("a", "a2")  # replaces a1, but "a" was first in line and stays first
    assert slots.take(timeout=0) == ("a", "a2")
    assert slots.take(timeout=0) == ("b", "b1")
    assert slots.dropped("a") == 1 and slots.dropped("b") == 0


def test_clear_empties_without_counting_drops_and_close_wakes_take():
    slots = LatestFrameSlots()
    slots.put("a", 1)
    assert slots.clear() == {"a": 1}
    assert slots.dropped("a") == 0
    result = []
    waiter = threading.Thread(target=lambda: result.append(slots.take(timeout=30)))
    waiter.start()
    slots.close()
    waiter.join(timeout=10)
    assert not waiter.is_alive() and result == [None]


def test_worker_handles_every_frame_it_takes_and_survives_errors():
    slots = LatestFrameSlots(["a"])
    handled, errors = [], []
    done = threading.Event()

    def handle(camera, frame):
        if frame == "bad":
            raise RuntimeError("broken frame")
        handled.append((camera, frame))
        if frame == "last":
            done.set()

    worker = FrameWorker(slots, handle, lambda camera, frame, exc: errors.append(str(exc))).start()
    try:
        slots.put("a", "bad")
        for _ in range(200):  # wait until the bad frame was taken, without timing assertions
            if not slots.waiting("a") and not worker.busy:
                break
            threading.Event().wait(0.01)
        slots.put("a", "last")
        assert done.wait(timeout=30)
    finally:
        assert worker.stop(timeout=30)
    assert errors == ["broken frame"]
    assert handled == [("a", "last")]
    assert not worker.alive


def test_worker_runs_idle_work_between_frames_and_survives_its_errors():
    slots = LatestFrameSlots(["a"])
    handled, calls = [], []
    enough, done = threading.Event(), threading.Event()

    def idle():
        calls.append(list(handled))
        if len(calls) == 2:
            raise RuntimeError("idle work broke")
        if len(calls) >= 4:
            enough.set()
        return 0.01  # asks to be called again soon

    def handle(camera, frame):
        handled.append(frame)
        done.set()

    worker = FrameWorker(slots, handle, lambda *_: None, idle=idle).start()
    try:
        assert enough.wait(timeout=30)  # called again after it raised
        slots.put("a", "frame")
        assert done.wait(timeout=30)
        for _ in range(300):
            if calls[-1] == ["frame"]:
                break
            threading.Event().wait(0.01)
        assert calls[-1] == ["frame"]  # and after the frame
    finally:
        assert worker.stop(timeout=30)
