"""``bench latency``: the node in its own process over DDS, a short real run."""

import json
import subprocess
import sys

import pytest

from ros_helpers import make_tiny_detector

pytestmark = pytest.mark.ros


def test_latency_bench_writes_one_row_per_case(tmp_path):
    model = make_tiny_detector(tmp_path / "detector.pt")
    out = tmp_path / "latency.json"
    command = [sys.executable, "-m", "ttt_perception.cli", "bench", "latency",
               "--model", str(model), "--rates", "5", "--cameras", "1", "--sizes", "64x48",
               "--duration", "2", "--prewarm-ms", "5", "0", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["meta"]["mode"] == "reset" and payload["meta"]["model"] == str(model)
    assert payload["meta"]["prewarm_ms"] == [5.0, 0.0]
    rows = payload["results"]  # one node run per pre-warm, side by side
    assert [(r["size"], r["prewarm_ms"], r["rate_hz"], r["cameras"]) for r in rows] == [
        ("64x48", 5.0, 5.0, 1), ("64x48", 0.0, 5.0, 1)]
    for row in rows:
        assert 0 < row["answered"] <= row["sent"]
        assert row["e2e_ms_p50"] >= row["adapter_ms_p50"] > 0
    assert "| 64x48 | 5 | 5 | 1 |" in done.stdout and "| 64x48 | 0 | 5 | 1 |" in done.stdout


def test_latency_bench_refuses_a_prewarm_out_of_range(tmp_path):
    command = [sys.executable, "-m", "ttt_perception.cli", "bench", "latency", "--prewarm-ms", "5", "-1",
               "--out", str(tmp_path / "latency.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--prewarm-ms must be in 0 .. 1000 ms" in done.stdout + done.stderr
    assert not (tmp_path / "latency.json").exists()
