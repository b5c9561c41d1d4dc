"""pix2pix (Isola et al., CVPR 2017) as its authors' PyTorch code trains and tests it: flags, networks, model, trainer."""

from .model import Pix2PixModel
from .options import ARCHITECTURE_FLAGS, DEFAULTS, Architecture, add_flags, build_networks
from .trainer import Pix2PixTrainer

__all__ = ['ARCHITECTURE_FLAGS', 'DEFAULTS', 'Architecture', 'Pix2PixModel', 'Pix2PixTrainer', 'add_flags', 'build_networks']
