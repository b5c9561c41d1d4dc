"""pix2pixHD model, trainer and networks."""
import argparse

from .pix2pixHD_model import Pix2PixHDModel, device_of


def create_model(opt: argparse.Namespace) -> Pix2PixHDModel:
    """The pix2pixHD model on the device --gpu_ids selects (for inference; training builds a trainer)."""
    model = Pix2PixHDModel(opt).to(device_of(opt))
    print(f'model [{type(model).__name__}] was created')
    return model
