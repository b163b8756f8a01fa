"""Serving benchmark: headstart under load against ONNX Runtime alone and a minimal Flask stack."""
