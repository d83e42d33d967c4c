"""``bench endurance --quick``: the short version of the soak, fuzz, lifecycle and recovery runs.

The long version (``make endurance``: 30,000 frames, 1,000 fuzzed messages, 50 cycles) stays out of
``make test``; its numbers are in docs/endurance.md. Here each phase runs briefly against the real
node over DDS and the accounting and recovery facts are checked; memory growth is only measured over
the long run (a few hundred frames are still inside the allocator's warm-up).
"""

import json
from types import SimpleNamespace

import pytest

from ttt_perception.bench import endurance

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    out = tmp_path_factory.mktemp("endurance") / "endurance.json"
    args = SimpleNamespace(quick=True, frames=None, rate=None, fuzz=None, cycles=None, warmup=0.1,
                           phases=["soak", "fuzz", "lifecycle", "recovery"], model="", out=out)
    assert endurance.main(args) == 0
    return json.loads(out.read_text())


def test_soak_answers_or_counts_every_frame(payload):
    soak = payload["soak"]
    assert soak["sent"] >= endurance.QUICK["frames"] and soak["node_alive"]
    assert soak["lost"] == 0 and soak["answered"] > 0
    assert soak["node_failed"] == 0


def test_fuzzed_messages_crash_nothing_and_good_frames_are_answered_after(payload):
    fuzz = payload["fuzz"]
    assert fuzz["node_received"] == fuzz["messages"]
    assert fuzz["crashes"] == 0 and fuzz["adapter_failures"] == 0
    assert fuzz["rejected"] > 0 and fuzz["rejected_by_reason"]
    assert fuzz["good_frames_after"]["answered"] > 0


def test_lifecycle_cycles_work_and_leave_no_threads_or_files(payload):
    cycles = payload["lifecycle"]
    assert cycles["all_ok"] and cycles["cycles_with_an_answer"] == cycles["cycles"]
    assert cycles["threads_growth"] <= 0 and cycles["open_files_growth"] <= 0


def test_collapse_and_non_finite_state_are_reset_automatically(payload):
    recovery = payload["recovery"]
    assert "sigma" in recovery["collapse"]["auto_reset"] and recovery["collapse"]["recovered"]
    assert recovery["nan_frames"]["rejected"] and recovery["nan_frames"]["answered_after"]
    assert recovery["non_finite_state"]["auto_reset"] == "non-finite self-supervised loss"
    assert recovery["non_finite_state"]["next_frame_finite"]
