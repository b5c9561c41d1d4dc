"""Precompute E's feature maps for --load_features (docs/EDITOR.md, "Instance features"): upsampled x2 (nearest) and
saved as 3-channel 8-bit PNGs in <dataroot>/<phase>_feat, named as the label maps, as one set: built in a staging
folder with a record of the model that made it (feature_maps.json), then put in place whole, so that a run killed
midway leaves the previous set as it was and --load_features never trains on maps of two models."""

import hashlib
import json
import os
import shutil

import torch.nn.functional as F
from tqdm import tqdm

from builders import build_data, build_model
from data.aligned_dataset import FEATURE_SET_FILE
from models import METHODS
from options.base_options import OptionsError, check_writable
from options.test_options import FeatureOptions
from util.checkpoint import checkpoint_file
from util.cli import run_main
from util.files import publish_folder, recover_folder, staging_path
from util.images import save_image, tensor2im
from util.records import experiment_dir, write_text


def main() -> None:
    """Encode every image of the phase and put the set of its feature maps next to the dataset's folders."""
    opt = FeatureOptions(
        "Write E's feature maps of the training photos as PNGs in <dataroot>/<phase>_feat, for train.py --load_features.",
        METHODS,
    ).parse()
    if not hasattr(opt, 'load_features'):
        raise OptionsError(
            f"--model {opt.model} reads no precomputed feature maps (it has no --load_features); encode_features.py --name "
            f"{opt.name} writes the cluster file its test-time styles draw from"
        )
    if opt.feat_num != 3:
        raise OptionsError(f"feature maps are saved as RGB PNGs, which needs --feat_num 3 (the experiment has {opt.feat_num})")
    _, data_loader = build_data(opt)
    model = build_model(opt)
    out_dir = os.path.join(opt.dataroot, f'{opt.phase}_feat')
    check_writable(opt.dataroot, '--dataroot')
    recover_folder(out_dir)  # what a killed run left: its staging folder goes, an old set half-replaced comes back
    staging = staging_path(out_dir)
    os.makedirs(staging)
    try:
        names = []
        for data in tqdm(data_loader, desc='precomputing feature maps', dynamic_ncols=True):
            feature_map = model.encode_feature_map(data['label'], data['inst'], data['image'])
            upsampled = F.interpolate(feature_map, scale_factor=2, mode='nearest')
            names.append(os.path.splitext(os.path.basename(data['path'][0]))[0] + '.png')
            save_image(tensor2im(upsampled[0].cpu()), os.path.join(staging, names[-1]))
        with open(str(checkpoint_file(experiment_dir(opt), f'{opt.which_epoch}_net_E.pth')), 'rb') as handle:  # E was loaded
            encoder = hashlib.sha256(handle.read()).hexdigest()
        record = {'experiment': os.path.abspath(experiment_dir(opt)), 'which_epoch': opt.which_epoch, 'encoder_sha256': encoder}
        write_text(os.path.join(staging, FEATURE_SET_FILE), json.dumps({**record, 'maps': sorted(names)}, indent=1))
        publish_folder(staging, out_dir)
    except BaseException:  # a failure or Ctrl-C: the previous set stays, the half-built one goes
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f'{len(names)} feature maps written to {out_dir}')


if __name__ == '__main__':
    run_main(main)
