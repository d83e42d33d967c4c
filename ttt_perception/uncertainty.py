"""Uncertainty of one prediction from its class distribution."""

from __future__ import annotations

import math

import numpy as np


def normalised_entropy(probs: np.ndarray) -> float:
    """Shannon entropy divided by log(C): 0 is certain, 1 is uniform."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    p = p / p.sum()
    if len(p) < 2:
        return 0.0
    return float(-(p * np.log(p)).sum() / math.log(len(p)))


def max_probability(probs: np.ndarray) -> float:
    return float(np.max(probs)) if len(probs) else 0.0


def margin(probs: np.ndarray) -> float:
    """Top-1 minus top-2 probability: small when two classes compete."""
    if len(probs) < 2:
        return 1.0
    top2 = np.sort(np.asarray(probs, np.float64))[-2:]
    return float(top2[1] - top2[0])


def summarise(probs: np.ndarray) -> dict[str, float]:
    return {"entropy": normalised_entropy(probs), "max_prob": max_probability(probs), "margin": margin(probs)}
