"""The official TensorFlow CRN checkpoints' variables -> this package's generator state_dict and architecture.

TensorFlow is not a dependency: dump a checkpoint's variables to an .npz once, where TensorFlow runs (TF 2 or a
recent TF 1; an old TF 1 without `tf.train.load_checkpoint` has the same reader as `tf.train.NewCheckpointReader`):

    import numpy as np, tensorflow as tf
    reader = tf.train.load_checkpoint('result_256p/model.ckpt')
    np.savez('crn_256p.npz', **{name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()})

then `python scripts/convert_crn_tf.py --npz crn_256p.npz --out checkpoints/crn_256p/latest_net_G.pth`.
Adam's slots (`.../Adam`, `.../Adam_1`, `beta1_power`, `beta2_power`) are skipped; the VGG19 was constants, not variables.
"""

import re
from collections.abc import Mapping

import numpy as np
import torch

from util.errors import ModelError

from .architecture import CITYSCAPES_INPUT_NC, Architecture, module_heights

VARIABLE = re.compile(r'^g_(?P<sp>\d+)_conv(?P<conv>1|2|100)/(?P<what>weights|biases|LayerNorm/beta|LayerNorm/gamma)$')
OPTIMIZER_SLOT = re.compile(r'(/Adam(_1)?$)|(^beta[12]_power$)')


def tf_variables_to_state_dict(variables: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """{TF name: array} -> {state_dict key: tensor}: weights HWIO -> OIHW, LayerNorm gamma/beta -> norm weight/bias."""
    state_dict = {}
    unknown = []
    for raw_name, value in variables.items():
        name = raw_name.removesuffix(':0')
        match = VARIABLE.match(name)
        if match is None:
            if not OPTIMIZER_SLOT.search(name):
                unknown.append(raw_name)
            continue
        sp, conv, what = match['sp'], match['conv'], match['what']
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ModelError(f"{raw_name}: not an array of numbers ({np.asarray(value).dtype})") from None
        rank = 4 if what == 'weights' else 1
        if array.ndim != rank:
            raise ModelError(f"{raw_name}: an array of shape {array.shape}; the official code's {what} have {rank} dimension(s)")
        if what == 'weights':
            key, array = f'g_{sp}.conv{conv}.weight', array.transpose(3, 2, 0, 1)
        elif what == 'biases':
            key = f'g_{sp}.conv{conv}.bias'
        else:
            key = f'g_{sp}.norm{conv}.' + ('weight' if what.endswith('gamma') else 'bias')
        state_dict[key] = torch.from_numpy(np.ascontiguousarray(array))
    if unknown:
        raise ModelError(f"not variables of the official CRN generator: {', '.join(sorted(unknown)[:5])}; expected g_<sp>_conv<n>/...")
    return state_dict


def architecture_from_state_dict(state_dict: Mapping[str, torch.Tensor], label_layout: str = 'cityscapes') -> Architecture:
    """The architecture that holds a converted state_dict (modules from g_4 up; input and output channels from the shapes)."""
    heights = sorted({int(key.split('.')[0][2:]) for key in state_dict})
    if not heights or heights != list(module_heights(len(heights))):
        raise ModelError(f"CRN variables for the modules {heights}: expected g_4, g_8, ... up to the output size with none missing")
    missing = [f'g_{height}_conv1/weights' for height in heights if f'g_{height}.conv1.weight' not in state_dict]
    if missing:
        raise ModelError(f"CRN variables: no {', '.join(missing)} (each module's first convolution)")
    widths = tuple(state_dict[f'g_{height}.conv1.weight'].shape[0] for height in heights)
    input_nc = state_dict['g_4.conv1.weight'].shape[1]
    last = state_dict.get(f'g_{heights[-1]}.conv100.weight')
    if last is None:
        raise ModelError(f"CRN variables: no g_{heights[-1]}_conv100 (the last module's 1x1 convolution to the images)")
    output_nc = 3
    if label_layout == 'cityscapes' and input_nc != CITYSCAPES_INPUT_NC:
        raise ModelError(
            f"CRN variables take {input_nc} label channels, not the Cityscapes layout's {CITYSCAPES_INPUT_NC}; pass the layout onehot"
        )
    return Architecture(label_layout, input_nc, widths, last.shape[0] // output_nc, output_nc)
