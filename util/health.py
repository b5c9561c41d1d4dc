"""NaN/Inf checks of tensors (weights, optimiser states): the largest magnitude of each in one host sync, the first not finite."""

import math

import torch


def largest_magnitudes(groups: dict) -> dict:
    """{group: [(key, largest |value|)]} of {group: {key: tensor}}: one fused reduction per group, one host sync.

    NaN or Inf anywhere in a tensor makes its entry NaN or Inf; tensors that are not floating point or
    are empty are left out.
    """
    keys, maxima = {}, []
    for group, tensors in groups.items():
        named = [(key, tensor.detach()) for key, tensor in tensors.items() if tensor.is_floating_point() and tensor.numel()]
        keys[group] = [key for key, _ in named]
        if named:
            maxima.append(torch.stack(torch._foreach_norm([tensor for _, tensor in named], float('inf'))).float().cpu())
    values = torch.cat(maxima).tolist() if maxima else []
    result, start = {}, 0
    for group, names in keys.items():
        result[group] = list(zip(names, values[start : start + len(names)]))
        start += len(names)
    return result


def first_nonfinite(magnitudes: dict) -> str | None:
    """`group, key` of the first tensor in largest_magnitudes()'s answer that holds NaN or Inf; None when all are finite."""
    for group, entries in magnitudes.items():
        for key, value in entries:
            if not math.isfinite(value):
                return f'{group}, {key}'
    return None


def optimizer_tensors(optimizer_state: dict) -> dict:
    """{`parameter i name`: tensor} of an optimiser state_dict's per-parameter state (Adam's step and moments)."""
    return {
        f'parameter {index} {name}': value
        for index, state in optimizer_state.get('state', {}).items()
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def training_state_tensors(training_state: dict) -> dict:
    """{`optimizer_X`: {key: tensor}} of the optimisers in a training state."""
    return {
        key: optimizer_tensors(value) for key, value in training_state.items() if key.startswith('optimizer_') and isinstance(value, dict)
    }
