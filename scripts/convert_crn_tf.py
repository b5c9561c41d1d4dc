"""Convert the official CRN's TensorFlow variables (dumped to an .npz) into this project's generator checkpoint.

    python scripts/convert_crn_tf.py --npz crn_256p.npz --out checkpoints/crn_256p/latest_net_G.pth

writes the generator's state_dict to --out and the record of its networks beside it (architecture.json: --model crn,
the Architecture value and the flags that build it), so that test.py --name <that folder> takes them from there.
How to dump the official checkpoint (result_256p/model.ckpt, ...) to the .npz without making TensorFlow a dependency:
see models/crn/convert.py.
"""

import argparse
import json
import os
import shlex
import sys
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.crn import architecture_from_state_dict, build_networks, tf_variables_to_state_dict  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.errors import ModelError  # noqa: E402
from util.records import ARCHITECTURE_FILE, write_text  # noqa: E402


def check_out(out: str) -> None:
    """--out must name a file whose folder can exist: refused before the .npz is read."""
    if os.path.isdir(out):
        raise ModelError(f"--out {out} is a folder: name the file to write, e.g. {os.path.join(out, 'latest_net_G.pth')}")
    folder = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ModelError(f"--out {out}: {folder} is a file, not a folder; choose another --out")


def main() -> None:
    """Read the .npz, convert, check it loads strictly into the architecture it implies, write both files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--npz', required=True, help='the TF variables by name (g_<sp>_conv<n>/weights, ...), as np.savez wrote them')
    parser.add_argument('--out', required=True, help='the generator state_dict to write, e.g. checkpoints/crn_256p/latest_net_G.pth')
    parser.add_argument(
        '--label_layout',
        default='cityscapes',
        choices=['cityscapes', 'onehot'],
        help='the input the model was trained on: cityscapes (19 trainIds + void, the official models) or onehot',
    )
    args = parser.parse_args()
    check_out(args.out)
    try:
        with np.load(args.npz) as npz:
            variables = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # missing, empty, truncated, not a zip
        raise ModelError(
            f"--npz {args.npz}: cannot read it as an .npz ({error}); dump the checkpoint as models/crn/convert.py shows"
        ) from None
    state_dict = tf_variables_to_state_dict(variables)
    arch = architecture_from_state_dict(state_dict, args.label_layout)
    try:
        build_networks(arch)['G'].load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # shapes that contradict each other: one line, not PyTorch's list
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ModelError(f"--npz {args.npz}: the variables do not form one CRN generator ({lines[min(1, len(lines) - 1)]})") from None
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(state_dict, args.out)
    folder = os.path.dirname(os.path.abspath(args.out))
    # The record test.py (and --continue_train, the editor) take --model and the architecture flags from.
    given = arch.flags()
    flags = {flag[2:]: int(value) if value.isdigit() and flag != '--crn_widths' else value for flag, value in zip(given[::2], given[1::2])}
    record = {'model': 'crn', 'architecture': arch.to_dict(), 'flags': flags}
    arch_path = os.path.join(folder, ARCHITECTURE_FILE)
    write_text(arch_path, json.dumps(record, indent=1, sort_keys=True))
    print(f'{len(state_dict)} tensors, {len(arch.widths)} refinement modules (widths {list(arch.widths)}), {arch.n_images} image(s)')
    print(f'wrote {args.out} and {arch_path}')
    which_epoch = os.path.basename(args.out).removesuffix('_net_G.pth')
    command = ['python', 'test.py', '--name', os.path.basename(folder), '--checkpoints_dir', os.path.dirname(folder)]
    print('test it with:', shlex.join([*command, '--which_epoch', which_epoch, '--dataroot', 'DATAROOT']))


if __name__ == '__main__':
    run_main(main)
