"""Evaluation and calibration: turning raw recogniser scores into door probabilities."""
