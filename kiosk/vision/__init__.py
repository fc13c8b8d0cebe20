"""Vision: from a camera frame to aligned faces.

Camera sources, image decoding, SCRFD face detection, five-point alignment, the face tracker
and the capture-quality checks used at enrolment. Nothing here knows who a face belongs to.
May import: kiosk's flat modules (config, errors, clock, onnx_runtime) and nothing else of kiosk.
"""
