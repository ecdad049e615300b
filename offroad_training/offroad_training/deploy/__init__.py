"""Deployment chain: ONNX export, QDQ quantisation, QNN context binary, report, AI Hub."""
