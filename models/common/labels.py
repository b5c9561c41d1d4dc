"""Label maps as every label-to-image method reads them: one-hot classes, instance edges, the Cityscapes instance-id
encoding, and --relabel (changing classes before synthesis)."""

import json
import os

import torch

from util.errors import OptionsError


def get_edges(instance_map: torch.Tensor) -> torch.Tensor:
    """1 where a pixel's id differs from any of its 4 neighbours (both pixels of a pair), else 0."""
    edge = torch.zeros_like(instance_map, dtype=torch.bool)
    horizontal = instance_map[:, :, :, 1:] != instance_map[:, :, :, :-1]
    vertical = instance_map[:, :, 1:, :] != instance_map[:, :, :-1, :]
    edge[:, :, :, 1:] |= horizontal
    edge[:, :, :, :-1] |= horizontal
    edge[:, :, 1:, :] |= vertical
    edge[:, :, :-1, :] |= vertical
    return edge.float()


def one_hot_label(label_map: torch.Tensor, label_nc: int) -> torch.Tensor:
    """B x 1 x H x W class ids -> B x label_nc x H x W one-hot floats."""
    batch, _, height, width = label_map.shape
    one_hot = torch.zeros(batch, label_nc, height, width, device=label_map.device)
    return one_hot.scatter_(1, label_map.long(), 1.0)


def instance_class(instance_ids: torch.Tensor) -> torch.Tensor:
    """Class of each instance id: the id itself below 1000, else id // 1000 (Cityscapes encoding)."""
    return torch.where(instance_ids < 1000, instance_ids, instance_ids // 1000)


def parse_int_pairs(text: str, flag: str) -> dict:
    """'A:B,C:D' (or a JSON file of {"A": B}) -> {A: B} with integer keys and values."""
    if not text:
        return {}
    if os.path.isfile(text):
        try:
            with open(text) as handle:
                return {int(key): int(value) for key, value in json.load(handle).items()}
        except (ValueError, AttributeError) as error:
            raise OptionsError(f"{flag} {text}: expected a JSON object of integer pairs like {{\"26\": 3}} ({error})") from None
    pairs = {}
    for item in text.split(','):
        try:
            key, value = item.split(':')
            pairs[int(key)] = int(value)
        except ValueError:
            raise OptionsError(f"{flag} {text!r}: expected ID:VALUE pairs separated by commas, e.g. 26:3,24001:0") from None
    return pairs


def relabel_maps(label: torch.Tensor, inst: torch.Tensor, mapping: dict) -> tuple:
    """Change classes SRC -> DST in the label map and the instance map before synthesis.

    Stuff ids (< 1000) become DST; instance ids SRC*1000+k become DST*1000+k, so relabelled objects
    stay separate instances of their new class (and keep their edges).
    """
    if not mapping:
        return label, inst
    size = max(int(label.max()), max(mapping), max(mapping.values())) + 1
    lookup = torch.arange(size)
    for source, target in mapping.items():
        lookup[source] = target
    lookup = lookup.to(label.device)
    new_label = lookup[label.long()].to(label.dtype)
    new_inst = inst
    if inst.numel():
        ids = inst.long()
        is_instance = ids >= 1000
        classes = instance_class(ids)
        mapped = lookup[classes.clamp(max=size - 1)]
        mapped = torch.where(classes < size, mapped, classes)
        new_inst = torch.where(is_instance, mapped * 1000 + ids % 1000, mapped).to(inst.dtype)
    return new_label, new_inst


def check_relabel(mapping: dict, label_nc: int) -> dict:
    """Every SRC and DST of --relabel must be a class id below --label_nc."""
    for source, target in mapping.items():
        for value in (source, target):
            if not 0 <= value < label_nc:
                raise OptionsError(f"--relabel {source}:{target}: class {value} is outside 0..{label_nc - 1} (--label_nc {label_nc})")
    return mapping
