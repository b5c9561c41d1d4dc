"""The model family: a registry of methods (pix2pixHD, pix2pix, CRN), each a module with the same interface.

A method module exposes (models/pix2pixHD.py, models/pix2pix/, models/crn/ are the examples):

- `add_flags(parser)`: add its own flags in a help group of its own; `DEFAULTS`: its values for shared flags.
- `ARCHITECTURE_OPTIONS`: the flags that fix its networks (test.py takes them from opt.json; a resume must keep them).
- `RESUME_POLICY`: {flag: (kind, note)} for the other training flags add_flags adds (options/train_options.py's kinds).
- `size_base(opt)` (optional): the number both sides of an input must be a multiple of (default: pix2pixHD's rule).
- `INSTANCE_FEATURES`: whether it can use encoded instance features (--instance_feat, styles in test.py and the editor).
- `Architecture`: the value its networks are built from (`from_options`, `to_dict`, `from_dict`).
- `build_model(opt, clusters)`: the model (no file I/O; `clusters` are the cluster centres builders.py read, or None);
  the model has `netG` (the network that synthesizes), `device`, `loss_names`, `networks_by_name()` and
  `inference(label, inst, image)`.
- `build_trainer(opt, model)`: the trainer train.py drives (models/trainer_base.py's TrainerBase gives the shared parts).
  Under torchrun the trainer replaces each trained `net<X>` of the model by its DistributedDataParallel: the model
  reaches a network's own attributes (weights, submodules) through util.distributed.bare(), as `networks_by_name()`
  and `synthesizer()` (what --export_onnx exports) return the bare networks.

Adding a method is one module with those names and one line in MODELS.
"""

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

# --model name -> the module that implements it (imported on first use).
MODELS = {
    'pix2pixHD': 'models.pix2pixhd',
    'pix2pix': 'models.pix2pix',
    'crn': 'models.crn',
}


def load_method(name: str) -> ModuleType:
    """The module of the method --model `name` (KeyError for a name MODELS does not have)."""
    return importlib.import_module(MODELS[name])


class Methods(Mapping):
    """MODELS as a read-only mapping name -> method module, importing a module only when it is looked up."""

    def __getitem__(self, name: str) -> ModuleType:
        return load_method(name)

    def __iter__(self) -> Iterator[str]:
        return iter(MODELS)

    def __len__(self) -> int:
        return len(MODELS)


METHODS = Methods()
