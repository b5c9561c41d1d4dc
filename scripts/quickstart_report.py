#!/usr/bin/env python
"""Figures that say whether the quickstart worked, read from its files (no model is run).

  * synthesized vs real: mean absolute difference (0-255) between each synthesized test image and the
    real render, over all pixels and outside the cars (whose paint is the style, not a mistake);
  * styles: per test car, how far its mean colour moves between the styles (the largest distance
    between two styles, RGB 0-255), and the share of cars whose colour moves by more than a visible
    threshold;
  * speckle: the mean |difference| between the grey level and its 3x3 mean, over road pixels away
    from any edge and over all pixels at least 2 pixels from any label or instance edge, synthesized
    vs real (0-255; flat or smoothly shaded regions give ~0, grain or a grid texture of amplitude a
    give about a);
  * halos: the mean absolute difference on road, sidewalk and sky 1-3 pixels from a label or instance
    edge vs 4 pixels or more from any (both 0 for a perfect copy; a drawn style that misses the scene's
    colours raises both alike, a halo or fringe along edges only the first);
  * fringes: how much the road right outside a car (1-2 pixels) changes between the styles vs the road
    8 pixels or more from any car (the standard deviation over the styles, 0-255, mean over RGB and
    pixels). Only the car's drawn style changes there, so G's output next to the outline that depends
    on it (the paint leaking past the outline, or a pattern printed at the edge of the car's feature) raises
    the first; the road's own drawn style raises both alike;
  * the encoder's car features (training set, from features.npz and the cluster file): the share of
    their variance on each principal axis, and how well the K-means clusters separate the true paints
    of the synthetic cars (styles.json): purity = share of cars whose cluster's majority paint is their
    own, and how many paints own a cluster.

Usage (the quickstart calls it):
    python scripts/quickstart_report.py --results results/quickstart/test_latest --dataroot datasets/synthetic \
        --experiment checkpoints/quickstart
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import re
import sys

import numpy as np
from PIL import Image

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from data.synthetic import LABEL_IDS, load_styles  # noqa: E402

CAR, ROAD = LABEL_IDS['car'], LABEL_IDS['road']
# Classes of one colour per scene (up to shading), whose pixels next to an edge should look like the ones farther in.
PLAIN = [LABEL_IDS[name] for name in ('road', 'sidewalk', 'sky')]
_STYLE_RE = re.compile(r'^(.*)_synthesized_image(?:_style(\d+))?\.png$')


def read_rgb(path: str) -> np.ndarray:
    """An image file as an H x W x 3 float array, 0-255."""
    return np.asarray(Image.open(path).convert('RGB'), dtype=np.float64)


def read_map(path: str, size: tuple[int, int]) -> np.ndarray:
    """A label or instance map (16-bit kept) as int64, nearest-resized to size (w, h) as the dataset does."""
    image: Image.Image = Image.open(path)
    if image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    return np.asarray(image).astype(np.int64)


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Pixels whose 4-neighbours within `steps` are all in mask (the border counts as outside)."""
    for _ in range(steps):
        padded = np.pad(mask, 1, constant_values=False)
        mask = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask


def interior(label: np.ndarray, inst: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels at least `margin` pixels (4-neighbour steps) from any label or instance edge."""
    region = label * 65536 + inst
    same = np.ones(region.shape, bool)
    same[1:, :] &= region[1:, :] == region[:-1, :]
    same[:-1, :] &= region[:-1, :] == region[1:, :]
    same[:, 1:] &= region[:, 1:] == region[:, :-1]
    same[:, :-1] &= region[:, :-1] == region[:, 1:]
    return erode(same, margin)


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Pixels within `steps` 4-neighbour steps of mask (the border adds nothing)."""
    for _ in range(steps):
        padded = np.pad(mask, 1, constant_values=False)
        mask = padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return mask


def high_pass(grey: np.ndarray) -> np.ndarray:
    """Grey level minus its 3x3 mean (edge-replicated border): what is left of pixel-level texture."""
    padded = np.pad(grey, 1, mode='edge')
    height, width = grey.shape
    box = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)) / 9
    return grey - box


def test_layouts(results: str) -> dict[str, list[str]]:
    """{image name: its synthesized image paths, style order} of a results folder."""
    layouts: dict[str, list[tuple[int, str]]] = {}
    for path in glob.glob(os.path.join(results, 'images', '*_synthesized_image*.png')):
        match = _STYLE_RE.match(os.path.basename(path))
        if match:
            layouts.setdefault(match.group(1), []).append((int(match.group(2) or 0), path))
    return {name: [path for _, path in sorted(styles)] for name, styles in sorted(layouts.items())}


def image_figures(results: str, dataroot: str, phase: str = 'test') -> dict:
    """Difference to the real renders, colour moves of cars between styles, and road speckle."""
    layouts = test_layouts(results)
    if not layouts:
        raise SystemExit(f'error: {results}/images: no *_synthesized_image*.png; run test.py first')
    difference, difference_outside_cars, moves = [], [], []
    speckle_fake, speckle_real, flat_fake, flat_real = [], [], [], []
    near_edge, far_from_edge = [], []
    next_to_car, far_from_car = [], []
    for name, style_paths in layouts.items():
        stem = name.removesuffix('_gtFine_labelIds')
        real_path = os.path.join(results, 'images', f'{name}_real_image.png')
        if not os.path.isfile(real_path):
            raise SystemExit(f'error: {real_path} not found; the report needs the real photos ({phase}_img/) beside the results')
        real = read_rgb(real_path)
        size = (real.shape[1], real.shape[0])
        label = read_map(os.path.join(dataroot, f'{phase}_label', f'{name}.png'), size)
        inst = read_map(os.path.join(dataroot, f'{phase}_inst', f'{stem}_gtFine_instanceIds.png'), size)
        fakes = [read_rgb(path) for path in style_paths]
        not_car = label != CAR
        for fake in fakes:
            error = np.abs(fake - real).mean(axis=2)
            difference.append(error.mean())
            difference_outside_cars.append(error[not_car].mean())
        # Road away from every edge (its border, cars, poles on it): what should be flat.
        flat = interior(label, inst)
        # Halos: the error on road, sidewalk and sky 1-3 px from an edge over the error 4 px or more away
        # (a drawn style that misses the scene's colour raises both alike).
        plain, inside = np.isin(label, PLAIN) & interior(label, inst, 1), interior(label, inst, 4)
        for fake in fakes:
            error = np.abs(fake - real).mean(axis=2)
            if (plain & ~inside).any() and (plain & inside).any():
                near_edge.append(error[plain & ~inside].mean())
                far_from_edge.append(error[plain & inside].mean())
        # Fringes: the road next to a car changes between styles only where G's output there depends on the car's style.
        car = label == CAR
        road = label == ROAD
        ring, far = road & dilate(car, 2), road & ~dilate(car, 7)
        if len(fakes) > 1 and ring.any() and far.any():
            spread = np.stack(fakes).std(axis=0).mean(axis=2)
            next_to_car.append(spread[ring].mean())
            far_from_car.append(spread[far].mean())
        flat_road = flat & (label == ROAD)
        real_texture = np.abs(high_pass(real.mean(axis=2)))
        fake_textures = [np.abs(high_pass(fake.mean(axis=2))) for fake in fakes]
        if flat_road.any():
            speckle_real.append(real_texture[flat_road].mean())
            speckle_fake += [texture[flat_road].mean() for texture in fake_textures]
        if flat.any():
            flat_real.append(real_texture[flat].mean())
            flat_fake += [texture[flat].mean() for texture in fake_textures]
        for car_id in np.unique(inst[label == CAR]):
            body = erode(inst == car_id, 1)
            if body.sum() < 12 or len(fakes) < 2:
                continue
            colours = [fake[body].mean(axis=0) for fake in fakes]
            moves.append(max(np.linalg.norm(a - b) for a, b in itertools.combinations(colours, 2)))
    return {
        'images': len(layouts),
        'styles': max(len(paths) for paths in layouts.values()),
        'difference': float(np.mean(difference)),
        'difference_outside_cars': float(np.mean(difference_outside_cars)),
        'moves': np.array(moves),
        'speckle_fake': float(np.mean(speckle_fake)) if speckle_fake else float('nan'),
        'speckle_real': float(np.mean(speckle_real)) if speckle_real else float('nan'),
        'flat_fake': float(np.mean(flat_fake)) if flat_fake else float('nan'),
        'flat_real': float(np.mean(flat_real)) if flat_real else float('nan'),
        'near_edge': float(np.mean(near_edge)) if near_edge else float('nan'),
        'far_from_edge': float(np.mean(far_from_edge)) if far_from_edge else float('nan'),
        'next_to_car': float(np.mean(next_to_car)) if next_to_car else float('nan'),
        'far_from_car': float(np.mean(far_from_car)) if far_from_car else float('nan'),
    }


def feature_figures(experiment: str, dataroot: str, n_clusters: int) -> dict | str:
    """Principal-axis variance shares of the cars' encoded features and the paint purity of their clusters.

    The rows of features.npz are in the encoder's order (sorted images, then sorted instance ids), which
    matches styles.json when every car is still present at the training size; otherwise a message.
    """
    features_path = os.path.join(experiment, 'features.npz')
    clusters_path = os.path.join(experiment, f'features_clustered_{n_clusters:03d}.npz')
    for path in (features_path, clusters_path):
        if not os.path.isfile(path):
            return f'{path} not found (run encode_features.py)'
    with np.load(features_path) as archive:
        rows = archive[str(CAR)]
    with np.load(clusters_path) as archive:
        centres = archive[str(CAR)]
    styles = load_styles(dataroot)
    paints = [
        car['style']
        for stem, cars in sorted(styles.items())
        if stem.startswith('synth_')
        for car in sorted(cars, key=lambda car: car['instance_id'])
    ]
    if len(paints) != len(rows):
        return (
            f'{features_path} holds {len(rows)} cars but styles.json lists {len(paints)}: '
            f'generate the data at the training size so no car vanishes'
        )
    kept = rows[:, -1] > 0.5  # the cars encode_features.py clusters
    features, paints = rows[kept, :-1], np.array(paints)[kept]
    centred = features - features.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False) if len(features) > 1 else np.zeros(features.shape[1])
    variance_share = singular**2 / max(float((singular**2).sum()), 1e-12)
    nearest = np.argmin(((features[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    majority_hits, owned = 0, set()
    for cluster in np.unique(nearest):
        members = paints[nearest == cluster]
        names, counts = np.unique(members, return_counts=True)
        majority_hits += counts.max()
        owned.add(names[counts.argmax()])
    return {
        'cars': len(features),
        'variance_share': variance_share,
        'clusters': len(centres),
        'purity': majority_hits / max(len(features), 1),
        'paints_owned': len(owned),
        'paints': len(set(paints)),
    }


def main(argv: list[str] | None = None) -> dict:
    """Print the figures; return them."""
    parser = argparse.ArgumentParser(description='Print the figures of a quickstart run.')
    parser.add_argument('--results', required=True, help='the results folder of test.py (…/test_latest)')
    parser.add_argument('--dataroot', required=True, help='the synthetic dataset (with styles.json)')
    parser.add_argument('--experiment', help='checkpoints/<name>: adds the figures of the encoded car features')
    parser.add_argument('--n_clusters', type=int, default=10, help='the cluster file to read (features_clustered_<n>.npz)')
    parser.add_argument('--visible', type=float, default=40.0, help='a colour move (RGB distance, 0-255) a glance sees')
    args = parser.parse_args(argv)

    figures = image_figures(args.results, args.dataroot)
    moves = figures['moves']
    print(f'Quickstart figures ({figures["images"]} test layouts, {figures["styles"]} styles each):')
    print(
        f'  synthesized vs real render, mean |difference| (0-255): {figures["difference"]:.1f} '
        f'(outside the cars: {figures["difference_outside_cars"]:.1f})'
    )
    if len(moves):
        print(
            f'  car paint between styles: {len(moves)} cars, mean colour moves by {np.median(moves):.0f} (median); '
            f'{100 * (moves > args.visible).mean():.0f}% of cars move by more than {args.visible:.0f}/255'
        )
    else:
        print('  car paint between styles: no car large enough to measure (or a single style)')
    print(
        f'  speckle, mean |grey - its 3x3 mean| (0-255), synthesized vs real: on flat road {figures["speckle_fake"]:.2f} vs '
        f'{figures["speckle_real"]:.2f}; everywhere 2 px from an edge {figures["flat_fake"]:.2f} vs {figures["flat_real"]:.2f}'
    )
    print(
        f'  halos, mean |difference| on road, sidewalk and sky 1-3 px from an edge vs 4 px or more: '
        f'{figures["near_edge"]:.1f} vs {figures["far_from_edge"]:.1f}'
    )
    print(
        f'  fringes, how much the road changes between styles (std, 0-255) 1-2 px from a car vs 8 px or more: '
        f'{figures["next_to_car"]:.1f} vs {figures["far_from_car"]:.1f}'
    )
    if args.experiment:
        features = feature_figures(args.experiment, args.dataroot, args.n_clusters)
        if isinstance(features, str):
            print(f'  car features: {features}')
        else:
            shares = ' '.join(f'{share:.2f}' for share in features['variance_share'])
            print(
                f'  car features ({features["cars"]} training cars): variance share per principal axis {shares}; '
                f'{features["clusters"]} clusters, paint purity {100 * features["purity"]:.0f}%, '
                f'{features["paints_owned"]} of {features["paints"]} paints own a cluster'
            )
            figures['features'] = features
    return figures


if __name__ == '__main__':
    main()
