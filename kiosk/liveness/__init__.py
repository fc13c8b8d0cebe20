"""Liveness (presentation-attack detection): is the face at the door a live person, not a photo or a screen?

The detector interface and its per-track fusion (base), the Silent-Face models (silent_face),
the door's stage that runs them only on faces the recogniser would grant (gate), the active
head-turn check (head_turn) and which of it is on, with what threshold (setup). Evaluating and
calibrating it is calibration/liveness.py's job, offline.
May import: kiosk.vision, kiosk.storage, db, kiosk's flat modules; never kiosk.door (the door
imports us), calibration/ or kiosk.training.
"""
