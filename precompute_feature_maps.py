"""Precompute E's feature maps for --load_features (README, "Instance features"): upsampled x2 (nearest) and saved
as 3-channel 8-bit PNGs in <dataroot>/<phase>_feat, named as the label maps."""

import os

import torch.nn.functional as F
from tqdm import tqdm

from builders import build_data, build_model
from models import METHODS
from options.base_options import OptionsError, check_writable
from options.test_options import FeatureOptions
from util.cli import run_main
from util.images import save_image, tensor2im


def main() -> None:
    """Encode every image of the phase and write its feature map next to the dataset's folders."""
    opt = FeatureOptions(
        "Write E's feature maps of the training photos as PNGs in <dataroot>/<phase>_feat, for train.py --load_features.",
        METHODS,
    ).parse()
    if opt.feat_num != 3:
        raise OptionsError(f"feature maps are saved as RGB PNGs, which needs --feat_num 3 (the experiment has {opt.feat_num})")
    _, data_loader = build_data(opt)
    model = build_model(opt)
    out_dir = os.path.join(opt.dataroot, f'{opt.phase}_feat')
    check_writable(out_dir, '--dataroot')
    for data in tqdm(data_loader, desc='precomputing feature maps', dynamic_ncols=True):
        feature_map = model.encode_feature_map(data['label'], data['inst'], data['image'])
        upsampled = F.interpolate(feature_map, scale_factor=2, mode='nearest')
        name = os.path.splitext(os.path.basename(data['path'][0]))[0] + '.png'
        save_image(tensor2im(upsampled[0].cpu()), os.path.join(out_dir, name))
    print(f'{len(data_loader)} feature maps written to {out_dir}')


if __name__ == '__main__':
    run_main(main)
