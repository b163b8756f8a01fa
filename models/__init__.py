"""headstart's offline side: data, architectures, pre-training, fine-tuning and ONNX export."""
