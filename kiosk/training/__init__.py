"""Training: retraining the recognisers, offline from the door.

The retrain that writes a new model version (face templates, CLIP's text-tower fine-tune) and
its progress types. Heavy (torch, optimisers) and never imported by the door's runtime.
May import: kiosk.recognition, kiosk.vision, kiosk.storage, db, kiosk's flat modules.
"""
