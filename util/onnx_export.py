"""--export_onnx: the generator as an ONNX graph with dynamic batch, height and width."""
import importlib.util

import torch

from models.networks import ModelError
from models.pix2pixHD_model import Pix2PixHDModel


def generator_input(model: Pix2PixHDModel, data: dict) -> torch.Tensor:
    """The generator's input tensor for one loaded batch (zero features when the model uses them)."""
    input_label, _, _, _ = model.encode_input(data['label'], data['inst'])
    if model.use_features:
        batch, _, height, width = input_label.shape
        features = torch.zeros(batch, model.opt.feat_num, height, width, device=input_label.device)
        input_label = torch.cat((input_label, features), dim=1)
    return input_label


def export_generator(model: Pix2PixHDModel, data: dict, path: str) -> None:
    """Trace netG on one real input and write it to `path` with dynamic batch/height/width axes."""
    if importlib.util.find_spec('onnx') is None:
        raise ModelError(f"--export_onnx {path}: the onnx package is not installed; pip install onnx onnxruntime")
    example = generator_input(model, data)
    dynamic = {0: 'batch', 2: 'height', 3: 'width'}
    torch.onnx.export(model.netG, (example,), path, input_names=['input'], output_names=['synthesized_image'],
                      dynamic_axes={'input': dynamic, 'synthesized_image': dynamic}, dynamo=False)
    print(f'Exported the generator ({example.shape[1]} input channels) to {path}')
