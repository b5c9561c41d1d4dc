"""--export_onnx: the generator as an ONNX graph with dynamic batch, height and width, verified with onnxruntime.

Exporter choice (checked with torch 2.14.1, onnx 1.23, onnxruntime 1.31, onnxscript 0.7): the legacy
TorchScript exporter (`dynamo=False`) still works. It warns that it is deprecated, but it needs only the
`onnx` package, exports a global or local G in well under a second, and matches PyTorch to ~1e-6 on
other sizes and batch sizes. The torch.export-based exporter (`dynamo=True`, the default since torch 2.9)
gives the same accuracy but also needs `onnxscript` and is ~8x slower to export. Should a future torch drop
the legacy path, switch to `dynamo=True` with `dynamic_shapes=({0: Dim('batch'), 2: Dim('height'),
3: Dim('width')},)` and add onnxscript to the requirements; the verification below catches a bad graph
either way.

The graph is the model's synthesizer alone (netG; for CRN netG and the choice of its first image, clipped, as
test.py shows it). Its input is what test.py feeds netG: for pix2pixHD the one-hot label map (label_nc
channels, or the RGB input for --label_nc 0), then the instance edge map (1 channel, unless --no_instance),
then the feature map (feat_num channels, with --instance_feat/--label_feat); for pix2pix the same without
features; for CRN its label encoding (models/crn/model.py). Sides must be multiples of the size base
(opt.size_base). The output is the image in [-1, 1]. The graph is float32 whatever --data_type/--amp say, in
eval mode: dropout is off and BatchNorm uses its running statistics (pix2pix: as test.py --eval, not the
authors' default batch statistics).
"""

import copy
import importlib.util
import os
import warnings
from typing import Any

import numpy as np
import torch

from util.errors import ModelError
from util.files import atomic_write

# Largest max-abs difference between onnxruntime and PyTorch outputs (images in [-1, 1]) that passes.
TOLERANCE = 1e-4
REQUIRED_PACKAGES = ('onnx', 'onnxruntime')
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}


def check_onnx_available(path: str) -> None:
    """Fail early, on one line, when the packages the export and its verification need are missing."""
    missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelError(f"--export_onnx {path}: {' and '.join(missing)} not installed; pip install onnx onnxruntime")


def generator_input(model: Any, data: dict, use_image: bool = False) -> torch.Tensor:
    """Exactly what test.py would feed netG for one loaded batch (sampled or encoded features included).

    Captured with a hook on netG during model.inference, so it follows the model's input encoding
    (one-hot labels, edges, --feat_choice / cluster sampling, --use_encoded_image) without repeating it.
    `use_image`: the photo is encoded for the features (--use_encoded_image).
    """
    captured = []
    handle = model.netG.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    try:
        image = data['image'] if use_image else None
        model.inference(data['label'], data['inst'], image)
    finally:
        handle.remove()
    return captured[0].float().cpu().contiguous()


def other_size_input(example: torch.Tensor, base: int) -> torch.Tensor:
    """A batch of two (the input and its mirror image) at about half the height and width, in multiples of `base`.

    Cropped from the real input; a side already at `base` grows to 2*base (mirrored) instead. It checks that
    the batch, height and width axes of the graph are really dynamic.
    """
    batch = example[:1]
    sizes = []
    for dim in (2, 3):
        size = batch.shape[dim]
        new_size = size // 2 // base * base
        if new_size < base:
            new_size = size + base
        while batch.shape[dim] < new_size:
            batch = torch.cat((batch, batch.flip(dim)), dim=dim)
        sizes.append(new_size)
    batch = batch[:, :, : sizes[0], : sizes[1]]
    return torch.cat((batch, batch.flip(3)), dim=0).contiguous()


def export_to_onnx(net: torch.nn.Module, example: torch.Tensor, path: str) -> None:
    """Trace `net` (float32, CPU, eval mode) on `example` into `path`, batch/height/width dynamic."""
    with warnings.catch_warnings():
        # Known and harmless for these generators: the deprecation notice of the legacy exporter, shape
        # checks inside InstanceNorm that the tracer cannot record (channel count, spatial size > 1; the
        # second-size verification proves the graph generalises), instance_norm exported with train=True
        # (InstanceNorm without running stats always normalises per instance), and Slice constant folding.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export')
        warnings.filterwarnings('ignore', message='The feature will be removed', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message=".*operator 'instance_norm' is set to train=True")
        warnings.filterwarnings('ignore', message='Constant folding')
        torch.onnx.export(
            net,
            (example,),
            path,
            input_names=['input'],
            output_names=['synthesized_image'],
            dynamic_axes={'input': DYNAMIC_AXES, 'synthesized_image': DYNAMIC_AXES},
            opset_version=17,
            dynamo=False,
        )


def verify_onnx(path: str, net: torch.nn.Module, inputs: list, shown_path: str | None = None) -> list:
    """Run the graph with onnxruntime (CPU) on each input; [(shape, max abs difference to `net`)], or ModelError."""
    import onnxruntime

    shown_path = shown_path or path
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    results = []
    for tensor in inputs:
        with torch.no_grad():
            expected = net(tensor).numpy()
        got = session.run(None, {'input': tensor.numpy()})[0]
        shape = 'x'.join(str(size) for size in tensor.shape)
        if got.shape != expected.shape:
            raise ModelError(
                f"--export_onnx {shown_path}: on a {shape} input onnxruntime gives shape {got.shape}, "
                f"PyTorch {expected.shape}; the exported graph is wrong and was not kept"
            )
        difference = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
        if not difference <= TOLERANCE:  # also catches NaN
            raise ModelError(
                f"--export_onnx {shown_path}: onnxruntime's output differs from PyTorch's by {difference:.3g} "
                f"(max abs, tolerance {TOLERANCE:g}) on a {shape} input; the exported graph is wrong and was not kept"
            )
        results.append((shape, difference))
    return results


def export_generator(model: Any, data: dict, path: str, base: int, use_image: bool = False) -> list:
    """Export the model's synthesizer to `path` and verify it against PyTorch on the loaded batch and on another size.

    `base` is the size base of the model's inputs; `use_image` as generator_input's. The file appears
    (atomically) only once verified.
    Returns [(input shape, max abs difference)].
    """
    check_onnx_available(path)
    # A method whose synthesizer is not netG on one tensor (vid2vid's per-frame G) says what it feeds it.
    own_input = getattr(model, 'synthesizer_input', None)
    example = own_input(data) if own_input is not None else generator_input(model, data, use_image)
    # A float32 eval copy on the CPU: the graph does not depend on --gpu_ids/--data_type, and the
    # PyTorch reference is not subject to TF32 or cuDNN algorithm choices.
    net = copy.deepcopy(model.synthesizer()).float().cpu().eval()
    inputs = [example, other_size_input(example, base)]
    results = []

    def write(tmp_path: str) -> None:
        export_to_onnx(net, example, tmp_path)
        results.extend(verify_onnx(tmp_path, net, inputs, shown_path=path))

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, write)
    print(f'Exported the generator ({example.shape[1]} input channels; dynamic batch, height and width) to {path}')
    checks = ', '.join(f'{difference:.2e} on {shape}' for shape, difference in results)
    print(f'Verified with onnxruntime (CPUExecutionProvider): max abs difference to PyTorch {checks} (tolerance {TOLERANCE:g})')
    return results
