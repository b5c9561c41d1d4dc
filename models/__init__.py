"""The model family: a registry of methods (pix2pixHD, pix2pix, CRN), each a package whose METHOD record
(models/common/method.py's Method) is all that train.py, test.py, the options, builders.py and the editor use of it.

A method's record names its Architecture (a frozen dataclass of what fixes its networks; its fields carry their
flags), its own flags (add_flags), its values of the shared flags, the --continue_train rules of its other flags,
what follows from its flags (derive, validate, size_base), the files its model is built from (read_files: read by
builders.py, the models do no file I/O) and its builders (build_model, build_trainer). Its model follows
models/common/method.py's Model protocol; its trainer subclasses models/common/trainer_base.py's TrainerBase.
Under torchrun the trainer replaces each trained `net<X>` of the model by its DistributedDataParallel: the model
reaches a network's own attributes (weights, submodules) through util.distributed.bare(), as `networks_by_name()`
and `synthesizer()` (what --export_onnx exports) return the bare networks.

Adding a method is one package with a METHOD and one line in MODELS (tests/toy_method.py is a complete example).
"""

import importlib
from collections.abc import Iterator, Mapping

from .common.method import Method

# --model name -> the module holding its METHOD (imported on first use); the first is the default --model.
MODELS = {
    'pix2pixHD': 'models.pix2pixhd',
    'pix2pix': 'models.pix2pix',
    'crn': 'models.crn',
    'vid2vid': 'models.vid2vid',
    'biggan': 'models.biggan',
}


def load_method(name: str) -> Method:
    """The record of the method --model `name` (KeyError for a name MODELS does not have)."""
    return importlib.import_module(MODELS[name]).METHOD


class Methods(Mapping):
    """MODELS as a read-only mapping name -> Method, importing a method only when it is looked up."""

    def __getitem__(self, name: str) -> Method:
        return load_method(name)

    def __iter__(self) -> Iterator[str]:
        return iter(MODELS)

    def __len__(self) -> int:
        return len(MODELS)


METHODS = Methods()
