"""CRN's two losses on VGG19 features (compute_error and G_loss of the official demos).

diversity (demo_256p.py): per layer l, image k and class c, p_l[k, c] = mean over pixels of
mask_c * mean over channels |fake_k - real|, the label map area-downsampled to the layer's size as the mask;
G_loss = 0.999 * sum_c min_k sum_l p_l + 0.001 * sum_c mean_k sum_l p_l. single (demo_512p.py, demo_1024p.py):
p_l = mean |fake - real| over everything, times the layer's weight; G_loss = sum_l p_l.
"""

import torch
import torch.nn.functional as F

from .vgg import CRNVgg19

# Weights of p0..p5 (the input, conv1_2, ..., conv5_2).
DIVERSITY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 10.0)
SINGLE_WEIGHTS = (1.0, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)
# demo_256p.py: the best image per class, plus a little of every image so that all of them learn.
BEST_WEIGHT, MEAN_WEIGHT = 0.999, 0.001
LAYER_NAMES = tuple(f'p{index}' for index in range(len(DIVERSITY_WEIGHTS)))


def to_255(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (the generator's and the data loader's scale) -> 0..255 as the demos compute (x + 1) / 2 * 255."""
    return (image + 1.0) / 2.0 * 255.0


def crn_loss(vgg: CRNVgg19, fake: torch.Tensor, real: torch.Tensor, masks: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """{'G_loss': scalar, 'p0'..'p5': per layer} for fake B x K x 3 x H x W and real B x 3 x H x W in [-1, 1].

    diversity: p_l is B x K x C (masks B x C x H x W, the encoded label map) and G_loss is averaged over the batch;
    single: p_l are scalars (masks unused).
    """
    batch, n_images = fake.shape[:2]
    with torch.no_grad():  # the photo's features are constants of the loss
        real_features = vgg(to_255(real))
    fake_features = vgg(to_255(fake.flatten(0, 1)))
    layers = {}
    for name, weight, fake_feature, real_feature in zip(LAYER_NAMES, weights_of(mode), fake_features, real_features):
        fake_feature = fake_feature.unflatten(0, (batch, n_images))
        if mode == 'single':
            layers[name] = (fake_feature - real_feature[:, None]).abs().mean() * weight
            continue
        error = (fake_feature - real_feature[:, None]).abs().mean(dim=2)  # B x K x h x w
        height, width = error.shape[-2:]
        # resize_area to the layer's size: exact block means at the official sizes.
        mask = F.adaptive_avg_pool2d(masks, (height, width))
        layers[name] = torch.einsum('bkhw,bchw->bkc', error, mask) / (height * width) * weight
    content = torch.stack(list(layers.values())).sum(dim=0)
    if mode == 'single':
        total = content
    else:
        best = content.min(dim=1).values.sum(dim=-1)
        total = (BEST_WEIGHT * best + MEAN_WEIGHT * content.mean(dim=1).sum(dim=-1)).mean()
    return {'G_loss': total, **layers}


def weights_of(mode: str) -> tuple[float, ...]:
    """The layer weights of a loss mode."""
    return SINGLE_WEIGHTS if mode == 'single' else DIVERSITY_WEIGHTS
