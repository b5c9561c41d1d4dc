"""pix2pixHD: the model (losses, inference), its trainer (optimisers, AMP, the step), networks, ONNX export and manipulation."""
