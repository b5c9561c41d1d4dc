"""Instance-feature styles (docs/EDITOR.md): cluster files, and the style choice per class or instance (drawn clusters,
--feat_choice, several styles per input); relabelling classes is models/common/labels.py's."""

import os

import numpy as np
import torch

from util.checkpoint import checkpoint_file
from util.errors import ModelError, OptionsError, describe
from util.files import atomic_write

from ..common.labels import instance_class
from .networks import instance_segments

# Area unit of the reference: a pixel count is divided by (h * w // AREA_BLOCKS).
AREA_BLOCKS = 32
AREA_THRESHOLD = 0.5


# ---------------------------------------------------------------- cluster files
def class_arrays_writer(arrays: dict):
    """write(path) of {class id: 2-D array} as an .npz with one array per class (no pickle)."""

    def write(path: str) -> None:
        with open(path, 'wb') as handle:
            payload = {str(class_id): np.asarray(rows, dtype=np.float32) for class_id, rows in arrays.items()}
            np.savez(handle, **payload)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle

    return write


def save_class_arrays(path: str, arrays: dict) -> None:
    """{class id: 2-D array} to an .npz with one array per class (no pickle), atomically."""
    atomic_write(path, class_arrays_writer(arrays))


def load_clusters(path: str, feat_num: int, allow_pickle: bool = False) -> dict:
    """{class id: k x feat_num centres} from our .npz, or from the reference's pickled .npy with allow_pickle."""
    if not os.path.isfile(path):
        raise ModelError(f"cluster file {path} not found; run encode_features.py --name <experiment> first, or pass --cluster_path")
    if path.endswith('.npy'):
        if not allow_pickle:
            raise ModelError(
                f"{path} is a pickled dict from the reference code, and unpickling a file can run code in it; "
                f"pass --allow_pickle if you trust it, or re-run encode_features.py to write a .npz"
            )
        try:
            centers = np.load(path, allow_pickle=True, encoding='latin1').item()
            centers = {int(class_id): np.asarray(rows, dtype=np.float32) for class_id, rows in centers.items()}
        except Exception as error:  # any content other than the reference's {class: centres} dict
            raise ModelError(
                f"{path}: not a cluster file of the reference ({str(error).splitlines()[0]}); re-run encode_features.py to write a .npz"
            ) from None
    else:
        try:
            with np.load(path, allow_pickle=False) as archive:
                centers = {int(key): archive[key] for key in archive.files}
        except Exception as error:  # truncated or damaged archives: BadZipFile, bad CRC, zlib and EOF errors, ...
            raise ModelError(
                f"{path}: not a readable cluster file ({describe(error)}); it may be truncated or damaged: re-run encode_features.py"
            ) from None
    for class_id, rows in centers.items():
        if rows.ndim != 2 or rows.shape[1] != feat_num:
            raise ModelError(
                f"{path}: class {class_id} has centres of shape {rows.shape}, but --feat_num is {feat_num}; "
                f"re-run encode_features.py for this experiment"
            )
    return {int(class_id): np.asarray(rows, dtype=np.float32) for class_id, rows in centers.items() if len(rows)}


def resolve_cluster_path(opt) -> str:
    """The cluster file: --cluster_path as a path or inside checkpoints/<name>.

    Left at its default, the reference's pickled `features_clustered_010.npy` is never read: the
    same name with `.npz` (what encode_features.py writes) is used instead.
    """
    path = opt.cluster_path if 'cluster_path' in opt.explicit else os.path.splitext(opt.cluster_path)[0] + '.npz'
    expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
    # encode_features.py writes its files as one set: a set not yet moved into place is read from its folder.
    in_experiment = (checkpoint_file(expr_dir, path) if os.path.basename(path) == path else None) or os.path.join(expr_dir, path)
    return path if os.path.isfile(path) and not os.path.isfile(in_experiment) else in_experiment


def cluster_features(features: dict, n_clusters: int) -> dict:
    """Per class: keep rows whose area > 0.5, K-means with k = min(rows, n_clusters), random_state 0."""
    from sklearn.cluster import KMeans

    centers = {}
    for class_id, rows in sorted(features.items()):
        kept = rows[rows[:, -1] > AREA_THRESHOLD, :-1]
        if kept.shape[0]:
            k = min(kept.shape[0], n_clusters)
            # n_init=10: scikit-learn's default when the reference was written (now 'auto').
            centers[class_id] = KMeans(n_clusters=k, random_state=0, n_init=10).fit(kept).cluster_centers_
    return centers


# ---------------------------------------------------------------- style choices
class FeatureSampler:
    """Builds E-feature maps from cluster centres: per instance a random (seeded) or chosen centre.

    Classes without clusters get zeros (the reference left those pixels uninitialised).
    """

    def __init__(self, centers: dict, feat_num: int, choices: dict | None = None, seed: int | None = None) -> None:
        self.feat_num = feat_num
        self.counts = {class_id: rows.shape[0] for class_id, rows in centers.items()}
        max_class = max(centers, default=0)
        max_k = max(self.counts.values(), default=1)
        self.table = torch.zeros(max_class + 2, max_k, feat_num)  # last row: classes without clusters
        self.count_table = torch.zeros(max_class + 2, dtype=torch.long)
        for class_id, rows in centers.items():
            self.table[class_id, : rows.shape[0]] = torch.from_numpy(rows)
            self.count_table[class_id] = rows.shape[0]
        self.choices = self._validated(choices or {})
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))

    def available(self) -> str:
        """'class: number of clusters' for every clustered class, for messages."""
        return ', '.join(f'{class_id} ({count})' for class_id, count in sorted(self.counts.items())) or 'none'

    def _validated(self, choices: dict) -> dict:
        for key, index in choices.items():
            class_id = key if key < 1000 else key // 1000
            what = f'class {key}' if key < 1000 else f'instance {key} (class {class_id})'
            if class_id not in self.counts:
                raise OptionsError(
                    f"--feat_choice {key}:{index}: {what} has no clusters; classes with clusters (count): {self.available()}"
                )
            if not 0 <= index < self.counts[class_id]:
                raise OptionsError(
                    f"--feat_choice {key}:{index}: cluster index out of range; {what} has clusters 0..{self.counts[class_id] - 1}"
                )
        return choices

    def sample(self, instance_map: torch.Tensor) -> torch.Tensor:
        """B x feat_num x H x W map: each (image, instance) filled with one centre of its class."""
        batch, _, height, width = instance_map.shape
        segment, segment_ids, _ = instance_segments(instance_map)
        segment_ids = segment_ids.cpu()
        classes = instance_class(segment_ids)
        no_cluster_row = self.table.shape[0] - 1
        rows = torch.where(classes < no_cluster_row, classes, torch.full_like(classes, no_cluster_row))
        counts = self.count_table[rows]
        draws = torch.rand(segment_ids.numel(), generator=self.generator)
        index = torch.minimum((draws * counts).long(), (counts - 1).clamp(min=0))
        # A loop over the user's few choices, not over instances; instance choices come last so they win.
        for class_id, chosen in self.choices.items():
            if class_id < 1000:
                index[rows == class_id] = chosen
        for instance_id, chosen in self.choices.items():
            if instance_id >= 1000:
                index[segment_ids == instance_id] = chosen
        values = self.table[rows, index].to(instance_map.device)
        feature_map = values[segment].reshape(batch, height, width, self.feat_num)
        return feature_map.permute(0, 3, 1, 2).contiguous()
