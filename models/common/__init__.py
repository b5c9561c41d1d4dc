"""What the methods of the family share: the trainer base, GAN / feature-matching / VGG losses, normalisation,
label encoding, inference precision and ONNX export. Nothing here imports a method."""
