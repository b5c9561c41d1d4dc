"""Losses (docs/overview.md, "One training iteration"): GAN (LSGAN or BCE), discriminator feature matching and VGG19 perceptual."""

import os
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import ModelError

# relu1_1 .. relu5_1 of torchvision's VGG19 `features`, and the reference's weights for them.
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class GANLoss(nn.Module):
    """Adversarial loss on the last output of every discriminator scale, summed over scales.

    LSGAN (MSE to 1 / 0) by default; --no_lsgan: binary cross-entropy on the discriminator's logits.
    Reduced in float32 so mixed precision does not change the loss.
    """

    def __init__(self, use_lsgan: bool = True, target_real_label: float = 1.0, target_fake_label: float = 0.0) -> None:
        super().__init__()
        self.use_lsgan = use_lsgan
        self.real_label = target_real_label
        self.fake_label = target_fake_label

    def forward(self, predictions: list, target_is_real: bool) -> torch.Tensor:
        """Sum over scales of the loss of the final score map against the real/fake target."""
        target_value = self.real_label if target_is_real else self.fake_label
        total = None
        for scale_outputs in predictions:
            score = scale_outputs[-1].float()
            target = torch.full_like(score, target_value)
            if self.use_lsgan:
                loss = F.mse_loss(score, target)
            else:
                loss = F.binary_cross_entropy_with_logits(score, target)
            total = loss if total is None else total + loss
        return cast(torch.Tensor, total)  # every list above is non-empty


def feature_matching_loss(pred_fake: list, pred_real: list, num_D: int, n_layers_D: int, lambda_feat: float) -> torch.Tensor:
    """sum_i,j (1/num_D) * (4/(n_layers_D+1)) * L1(D_ij(fake), D_ij(real).detach()) * lambda_feat."""
    weight = (1.0 / num_D) * (4.0 / (n_layers_D + 1)) * lambda_feat
    total = None
    for fake_outputs, real_outputs in zip(pred_fake, pred_real):
        for fake_feature, real_feature in zip(fake_outputs[:-1], real_outputs[:-1]):
            loss = F.l1_loss(fake_feature.float(), real_feature.detach().float()) * weight
            total = loss if total is None else total + loss
    return cast(torch.Tensor, total)  # every list above is non-empty


class Vgg19(nn.Module):
    """Frozen VGG19 `features` cut at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1."""

    def __init__(self, features: nn.Sequential) -> None:
        """`features`: torchvision's VGG19 `features` (load_vgg19_features reads them; the network does no file I/O)."""
        super().__init__()
        for index, (start, end) in enumerate(VGG_SLICES, start=1):
            setattr(self, f'slice{index}', nn.Sequential(*[features[i] for i in range(start, end)]))
        for parameter in self.parameters():
            parameter.requires_grad = False

    def forward(self, x: torch.Tensor) -> list:
        """The five relu activations."""
        outputs = []
        for index in range(1, len(VGG_SLICES) + 1):
            x = getattr(self, f'slice{index}')(x)
            outputs.append(x)
        return outputs


def load_vgg19_features(weights_path: str | None) -> nn.Sequential:
    """torchvision's VGG19 `features` with ImageNet weights, from a local file or torchvision's download."""
    from torchvision.models import VGG19_Weights, vgg19

    if weights_path:
        if not os.path.isfile(weights_path):
            raise ModelError(f"--vgg_weights {weights_path}: file not found; give a torchvision VGG19 state_dict or pass --no_vgg_loss")
        model = vgg19(weights=None)
        try:
            state_dict = torch.load(weights_path, map_location='cpu', weights_only=True)
            model.load_state_dict(state_dict)
        except Exception as error:  # any unreadable or mismatching file gets the same actionable message
            raise ModelError(
                f"--vgg_weights {weights_path}: not a torchvision VGG19 state_dict ({str(error).splitlines()[0]}); "
                f"save one with torch.save(torchvision.models.vgg19(weights='IMAGENET1K_V1').state_dict(), PATH)"
            ) from None
        return model.features
    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
    except Exception as error:  # offline machines fail here with URLError/OSError/RuntimeError alike
        raise ModelError(
            f"cannot download the VGG19 ImageNet weights ({str(error).splitlines()[0]}); "
            f"pass --vgg_weights PATH to a torchvision VGG19 state_dict, or --no_vgg_loss"
        ) from None


class VGGLoss(nn.Module):
    """sum_k w_k * L1(vgg_k(fake), vgg_k(real).detach()), images fed in [-1, 1] as the reference does."""

    def __init__(self, features: nn.Sequential) -> None:
        """`features`: torchvision's VGG19 `features`, as load_vgg19_features reads them."""
        super().__init__()
        self.vgg = Vgg19(features)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Weighted L1 between the VGG features of fake and real; only the fake's pass keeps a graph."""
        # The real photo's features are constants of the loss: a pass without autograd saves no
        # activations, and the backward then runs through the fake's pass alone.
        with torch.no_grad():
            real_features = self.vgg(real)
        total = None
        for weight, fake_feature, real_feature in zip(VGG_WEIGHTS, self.vgg(fake), real_features):
            loss = weight * F.l1_loss(fake_feature.float(), real_feature.float())
            total = loss if total is None else total + loss
        return cast(torch.Tensor, total)  # every list above is non-empty
