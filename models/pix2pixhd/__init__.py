"""pix2pixHD (Wang et al., CVPR 2018) as a method of the registry (models/__init__.py): its flags in options.py, its
networks in networks/, its model in model.py, its trainer in trainer.py, its instance-feature styles in styles.py."""

import argparse
import dataclasses

from util.errors import ModelError

from .model import Pix2PixHDModel
from .options import DEFAULTS, RESUME_POLICY, add_flags, derive, size_base, validate
from .styles import load_clusters, resolve_cluster_path
from .trainer import Pix2PixHDTrainer

__all__ = [
    'ARCHITECTURE_OPTIONS',
    'DEFAULTS',
    'FIELD_FLAGS',
    'INSTANCE_FEATURES',
    'RESUME_POLICY',
    'Architecture',
    'add_flags',
    'build_model',
    'build_trainer',
    'derive',
    'read_files',
    'size_base',
    'validate',
]

INSTANCE_FEATURES = True


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything that fixes the shapes of pix2pixHD's G and E and their input encoding: the flags of the same names."""

    label_nc: int
    input_nc: int
    output_nc: int
    netG: str
    ngf: int
    n_downsample_global: int
    n_blocks_global: int
    n_blocks_local: int
    n_local_enhancers: int
    norm: str
    use_dropout: bool
    no_instance: bool
    instance_feat: bool
    label_feat: bool
    feat_num: int
    n_downsample_E: int
    nef: int

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the parsed options describe."""
        return cls(**{field.name: getattr(opt, field.name) for field in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        """JSON-safe field -> value."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'Architecture':
        """Inverse of to_dict(); a missing or unknown field is a ModelError (saved by another model or version)."""
        names = {field.name for field in dataclasses.fields(cls)}
        if set(values) != names:
            raise ModelError(
                f"pix2pixHD architecture: missing fields {sorted(names - set(values))}, unknown fields {sorted(set(values) - names)}; "
                f"saved by another model or version"
            )
        return cls(**values)


# Options test.py takes from opt.json and a resume must keep: the architecture's fields are flags.
ARCHITECTURE_OPTIONS = tuple(field.name for field in dataclasses.fields(Architecture))
FIELD_FLAGS = {name: f'--{name}' for name in ARCHITECTURE_OPTIONS}


def read_files(opt: argparse.Namespace) -> dict:
    """What builders.py reads for build_model: the cluster centres test-time feature sampling draws from (a model with
    instance features, without --use_encoded_image), from --cluster_path."""
    if opt.isTrain or not opt.use_features or opt.use_encoded_image:
        return {}
    return {'clusters': load_clusters(resolve_cluster_path(opt), opt.feat_num, opt.allow_pickle)}


def build_model(opt: argparse.Namespace, clusters: dict | None = None) -> Pix2PixHDModel:
    """pix2pixHD's model for the options; `clusters` are the centres test-time feature sampling draws from."""
    return Pix2PixHDModel(opt, clusters)


def build_trainer(opt: argparse.Namespace, model: Pix2PixHDModel) -> Pix2PixHDTrainer:
    """The trainer of the reference's iteration around `model`."""
    return Pix2PixHDTrainer(opt, model)
