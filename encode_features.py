"""Encode every training image with E, collect per-instance features per class, K-means them
(README, "Instance features, styles and semantic manipulation").

Writes checkpoints/<name>/features.npz (per class: rows of feat_num features + area) and
checkpoints/<name>/features_clustered_<n_clusters>.npz (per class: the cluster centres), no pickle.
"""

import os

import numpy as np
import torch
from tqdm import tqdm

from builders import build_data, build_model
from models import METHODS
from models.pix2pixhd.styles import class_arrays_writer, cluster_features
from options.base_options import check_writable, experiment_dir
from options.test_options import FeatureOptions
from util.checkpoint import save_file_set
from util.cli import run_main


def collect_features(model, data_loader) -> dict:
    """{class id: N x (feat_num + 1) array of [features, area]} over the whole loader."""
    classes, rows = [], []
    for data in tqdm(data_loader, desc='encoding features', dynamic_ncols=True):
        instance_classes, features, area = model.encode_instance_features(data['label'], data['inst'], data['image'])
        classes.append(instance_classes.cpu())
        rows.append(torch.cat((features, area.unsqueeze(1)), dim=1).cpu())
    all_classes = torch.cat(classes).numpy()
    all_rows = torch.cat(rows).numpy()
    return {int(class_id): all_rows[all_classes == class_id] for class_id in np.unique(all_classes)}


def main() -> None:
    """Encode, save the raw features, cluster and save the centres; print a per-class summary."""
    opt = FeatureOptions(
        'Encode every training photo with the trained encoder E and '
        'cluster the per-object features of each class (the styles test.py and the editor offer).',
        METHODS,
    ).parse()
    check_writable(experiment_dir(opt), '--checkpoints_dir')
    _, data_loader = build_data(opt)
    model = build_model(opt)
    features = collect_features(model, data_loader)
    save_dir = experiment_dir(opt)
    centers = cluster_features(features, opt.n_clusters)
    cluster_name = f'features_clustered_{opt.n_clusters:03d}.npz'
    # Both files as one set (a staging folder committed by one rename): never new features beside old clusters.
    save_file_set(save_dir, 'features', {'features.npz': class_arrays_writer(features), cluster_name: class_arrays_writer(centers)})
    cluster_path = os.path.join(save_dir, cluster_name)
    print(f'{"class":>6} {"instances":>9} {"area>0.5":>8} {"clusters":>8}')
    for class_id, rows in sorted(features.items()):
        kept = int((rows[:, -1] > 0.5).sum())
        print(f'{class_id:>6} {rows.shape[0]:>9} {kept:>8} {len(centers.get(class_id, [])):>8}')
    print(f'Cluster centres for {len(centers)} classes written to {cluster_path}')


if __name__ == '__main__':
    run_main(main)
