"""Shared by the adapter tests: a clock driven by the model's work, and the settings without the gate."""

from ttt_perception.choices import GATE_OFF

# Tests about the steps, not the shift gate (on by default: test_adapter_gate.py) nor the confidence
# check that decides which weights predict (on by default: test_adapter_confidence.py).
UNGATED = {**GATE_OFF, "verify_confidence": False}


class FakeClock:
    """Time moves only when the model computes: each extractor forward costs ``forward_s``."""

    def __init__(self, forward_s: float = 0.02):
        self.now, self.forward_s = 0.0, forward_s

    def __call__(self) -> float:
        return self.now

    def attach(self, adapter):
        """Tick on the extractor forwards of the adapted weights and of the frozen source copy."""
        for model in (adapter.model, adapter.source_model):
            model.extractor.register_forward_hook(lambda *_: setattr(self, "now", self.now + self.forward_s))
