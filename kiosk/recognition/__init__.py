"""Recognition: from an aligned face to "who is this, and how sure".

The Recogniser interface, the face embedder (MobileFaceNet/ArcFace family) and its recogniser,
the CLIP model, its recogniser and ONNX image tower, the hybrid, the choice of recogniser in
force (selection), the model registry and the runtime half of score calibration (applying a
fitted mapping; fitting it is calibration/'s job). The door runs this package, so it must not
import calibration/ or kiosk.training (training imports us, never the reverse).
May import: kiosk.vision, kiosk.storage, db, kiosk's flat modules.
"""
