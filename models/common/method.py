"""The method interface: one typed record per method (what train.py, test.py, the options, builders.py and the editor
call), the architecture value each method declares once (its fields carry their flags), and the model protocol."""

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from util.errors import ModelError

from .label_to_image import aligned_dataset, test_visuals, training_visuals


def arch_field(*flags: str, default: Any = dataclasses.MISSING) -> Any:
    """A field of an Architecture, set by `flags` (option names without --; none: the flag of the field's own name)."""
    return dataclasses.field(default=default, metadata={'flags': flags})


@dataclasses.dataclass(frozen=True)
class ArchitectureRecord:
    """Base of a method's frozen Architecture dataclass: everything that fixes its networks' shapes.

    A field's flags (arch_field) are what test.py takes from the experiment's records and a resume must keep; the
    flag lists and the JSON form follow from the fields. from_options reads
    the flag of each field's own name; a method whose fields are computed from its flags overrides it.
    """

    model_name: ClassVar[str] = 'a method'

    @classmethod
    def field_flags(cls) -> dict[str, tuple[str, ...]]:
        """{field: the option names that set it}."""
        return {field.name: field.metadata.get('flags') or (field.name,) for field in dataclasses.fields(cls)}

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """Every option name that sets a field, once each, in field order."""
        return tuple(dict.fromkeys(flag for flags in cls.field_flags().values() for flag in flags))

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> Any:
        """The architecture the parsed options describe (the flag of each field's name)."""
        return cls(**{field.name: getattr(opt, field.name) for field in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        """JSON-safe field -> value (tuples as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> Any:
        """Inverse of to_dict(); a missing or unknown field, or a value of the wrong type, is a ModelError."""
        names = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(values, dict):
            raise ModelError(f"{cls.model_name} architecture: a {type(values).__name__}, not an object of fields; saved by another program")
        if set(values) != set(names):
            raise ModelError(
                f"{cls.model_name} architecture: missing fields {sorted(set(names) - set(values))}, unknown fields "
                f"{sorted(set(values) - set(names))}; saved by another model or version"
            )
        hints = typing.get_type_hints(cls)
        converted = {}
        for name in names:
            value, kind = values[name], hints[name]
            if typing.get_origin(kind) is tuple and isinstance(value, list):
                value = tuple(value)
            expected = typing.get_origin(kind) or kind
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ModelError(
                    f"{cls.model_name} architecture: {name} {value!r} is not {getattr(expected, '__name__', expected)}; "
                    f"saved by another model or version"
                )
            converted[name] = value
        return cls(**converted)


class Dataset(Protocol):
    """What train.py, test.py and builders.py use of a method's dataset: samples are dicts with at least 'path'."""

    dataset_size: int  # samples available (an epoch draws --max_dataset_size of them at most)

    def __len__(self) -> int:
        """Samples per epoch."""
        ...

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """One sample (`key`: an index, or (epoch, index) from the training sampler, for per-epoch augmentation):
        tensors by name, and 'path' (what the results page names it by)."""
        ...

    def name(self) -> str:
        """What the log calls the dataset."""
        ...

    def check_contents(self) -> None:
        """Refuse, naming the file and the fix, what only reading every file shows (train.py, once, before it writes)."""
        ...


class Model(Protocol):
    """What train.py, test.py, the editor and ONNX export call on every method's model."""

    netG: torch.nn.Module
    device: torch.device
    loss_names: tuple[str, ...]

    def networks_by_name(self) -> dict[str, torch.nn.Module]:
        """{checkpoint name: network} (the bare networks, outside any DDP)."""
        ...

    def inference(self, label: torch.Tensor, inst: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Synthesized images for a batch of label maps (and instance maps, photos where the method reads them)."""
        ...

    def synthesizer(self) -> torch.nn.Module:
        """The network --export_onnx exports: its input is generator_input()'s tensor."""
        ...


def _no_change(opt: argparse.Namespace) -> None:
    """A method without derived values or checks of its own."""


def _no_files(opt: argparse.Namespace) -> dict:
    """A method whose model needs no file besides its weights."""
    return {}


def _size_one(opt: argparse.Namespace) -> int:
    """A method that takes inputs of any size."""
    return 1


@dataclasses.dataclass(frozen=True)
class Method:
    """One --model: its flags and the rules for them, the value its networks are built from, and its builders."""

    name: str
    architecture: type[ArchitectureRecord]
    add_flags: Callable[[argparse.ArgumentParser, bool], None]  # (parser, is_train): its own flags
    build_model: Callable[..., Any]  # (opt, **read_files(opt)) -> Model
    build_trainer: Callable[[argparse.Namespace, Any], Any]  # (opt, model) -> a TrainerBase
    defaults: dict = dataclasses.field(default_factory=dict)  # its values of the shared flags
    resume_policy: dict = dataclasses.field(default_factory=dict)  # {flag: (kind, note)} of its other training flags
    derive: Callable[[argparse.Namespace], None] = _no_change  # values that follow from its flags (before freezing)
    validate: Callable[[argparse.Namespace], None] = _no_change  # refusals of its flag combinations
    size_base: Callable[[argparse.Namespace], int] = _size_one  # what both sides of an input must be a multiple of
    read_files: Callable[[argparse.Namespace], dict] = _no_files  # what builders.py reads for build_model (no I/O in models)
    dataset: Callable[[argparse.Namespace], Dataset] = aligned_dataset  # its data: label maps + photos unless it says
    # The page rows of a batch: training's (opt, batch, generated) and test time's (opt, model, batch).
    training_visuals: Callable[[argparse.Namespace, dict, torch.Tensor], dict[str, np.ndarray]] = training_visuals
    test_visuals: Callable[[argparse.Namespace, Any, dict], dict[str, np.ndarray]] = test_visuals

    @property
    def architecture_options(self) -> tuple[str, ...]:
        """The flags test.py takes from the experiment's records and a resume must keep."""
        return self.architecture.options()
