"""Choice lists and defaults of adaptation, in one place; no torch, no rclpy.

The learning core (``AdaptationConfig``), the node's parameter specs (``ros/parameters.py``) and
the command-line tools all import them from here.
"""

from __future__ import annotations

from types import MappingProxyType

MODES = ("off", "reset", "online")
OBJECTIVES = ("rotation", "entropy", "features")
PARAMETER_SETS = ("auto", "extractor", "stem", "norm")
POLICIES = ("truncate", "skip")
STOP_REASONS = ("done", "budget", "late", "off", "low_loss", "high_loss")
# What is published while the confidence check does not trust a camera's adapted weights.
CONFIDENCE_FALLBACKS = ("auto", "source", "surer", "average")

# The real-time defaults of ``AdaptationConfig``, field by field. Learning rate and gate were chosen
# on the val split with ``bench tune`` (results/tune1_*.json, docs/adaptation.md#choosing-the-defaults).
ADAPTATION_DEFAULTS = MappingProxyType({
    "mode": "online",
    "objective": "rotation",
    "learning_rate": 0.0,  # 0: the rate chosen for the model's task (TASK_DEFAULTS)
    "momentum": -1.0,  # -1 (AUTO_MOMENTUM): the momentum chosen for the model's task (TASK_DEFAULTS)
    "max_steps": 1,
    "batch_size": 0,  # 0: the copies per step chosen for the model's task (TASK_DEFAULTS)
    "parameters": "auto",
    "share_state": False,
    "budget_ms": 0.0,  # 0: no deadline
    "policy": "truncate",
    "score_threshold": 0.3,
    "max_detections": 20,
    "measure_ssl_loss": True,
    "health_sigma": 4.0,
    "health_patience": 5,
    "min_ssl_loss": 0.0,
    "min_ssl_loss_ratio": 1.3,
    "max_ssl_loss": -1.0,  # -1: the upper bound chosen for the model's task (TASK_DEFAULTS)
    "adapt_after_publish": False,
    "prewarm_ms": 5.0,
    "verify_confidence": True,
    "confidence_margin": 0.05,
    "confidence_fallback": "auto",  # the model's task's (TASK_DEFAULTS)
    "confidence_floor": -1.0,  # -1: the model's task's (TASK_DEFAULTS)
    "seed": 0,
})
# What the "auto" values above stand for, by the model's task; chosen on the val split with ``bench tune``
# (learning rate: results/tune1_*.json, tune9_detector.json; fallback: tune6_*.json, tune9_*.json;
# momentum and batch size: tune13_*.json, tune14_*.json; over three val seeds, classifier momentum and
# detector learning rate: tune16_classifier.json, tune17_detector.json; the gate's upper bound:
# tune11/12_*.json, for the detector over three val seeds tune19_detector.json; the classifier's confidence
# floor: publishing rules replayed on val streams of the defaults, docs/adaptation.md).
TASK_DEFAULTS = MappingProxyType({
    "classifier": MappingProxyType({"learning_rate": 3e-3, "confidence_fallback": "surer", "momentum": 0.0,
                                    "batch_size": 8, "max_ssl_loss": 2.25, "confidence_floor": 0.75}),
    "detector": MappingProxyType({"learning_rate": 8e-3, "confidence_fallback": "average", "momentum": 0.0,
                                  "batch_size": 16, "max_ssl_loss": 0.0, "confidence_floor": 0.0}),
})
# The value of each per-task field that stands for "the model's task's" (``TASK_DEFAULTS``); momentum,
# the upper bound and the floor use -1 because 0 is a value of their own (no momentum, bound, floor).
AUTO_VALUES = MappingProxyType({"learning_rate": 0.0, "momentum": -1.0, "batch_size": 0,
                                "confidence_fallback": "auto", "max_ssl_loss": -1.0, "confidence_floor": -1.0})
# The fields whose "auto" is -1, below their own range (which starts at 0).
AUTO_BELOW_RANGE = tuple(field for field, auto in AUTO_VALUES.items() if auto == -1.0)
# The shift gate with every bound off: a step on every frame (the paper's settings, the baselines, and
# the benchmarks and tests that are about the steps, not the gate).
GATE_OFF = MappingProxyType({"min_ssl_loss": 0.0, "min_ssl_loss_ratio": 0.0, "max_ssl_loss": 0.0})
# The node's (and the demo's) deadline per frame: a camera at 10 Hz.
NODE_BUDGET_MS = 100.0
# The longest pre-warm lead (prewarm_ms): the config, the node's parameter and bench latency check it.
MAX_PREWARM_MS = 1000.0
