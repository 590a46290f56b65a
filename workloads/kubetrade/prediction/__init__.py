"""Price prediction: a small ONNX model as an optional signal input of a genome."""
