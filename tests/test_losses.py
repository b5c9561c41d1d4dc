"""Tests for the input encoding helpers and the losses (GAN, feature matching, VGG19)."""

import urllib.error

import pytest
import torch

from builders import build_data
from helpers import TINY
from models import METHODS
from models.common.labels import get_edges, instance_class, one_hot_label
from models.common.losses import VGG_WEIGHTS, GANLoss, VGGLoss, feature_matching_loss, load_vgg19_features
from models.pix2pixhd.model import Pix2PixHDModel, read_files
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.train_options import TrainOptions
from util.errors import ModelError

# ---------------------------------------------------------------- input encoding


def test_get_edges_marks_both_pixels_of_4_neighbour_pairs():
    a, b, c = 33001, 33002, 26000
    ids = torch.tensor([[a, a, b, b, b], [a, a, b, b, b], [c, c, c, b, b], [c, c, c, c, c]], dtype=torch.int32).reshape(1, 1, 4, 5)
    expected = torch.tensor(
        [
            [0, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],  # (1,3) differs from (2,2) only diagonally: not an edge
            [1, 1, 1, 1, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=torch.float32,
    ).reshape(1, 1, 4, 5)
    edges = get_edges(ids)
    assert edges.dtype == torch.float32
    assert edges.shape == (1, 1, 4, 5)
    assert torch.equal(edges, expected)


def test_get_edges_diagonal_only_and_batch_independent():
    ids = torch.ones(2, 1, 3, 3, dtype=torch.int64)
    ids[0, 0, 0, 0] = 5
    edges = get_edges(ids)
    assert torch.equal(edges[0, 0], torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(edges[1], torch.zeros(1, 3, 3))


def test_one_hot_label_one_per_pixel_at_the_right_channel():
    label = torch.tensor([[0, 1, 2, 4], [4, 4, 3, 0], [2, 2, 1, 1]], dtype=torch.uint8).reshape(1, 1, 3, 4)
    one_hot = one_hot_label(label, 5)
    assert one_hot.shape == (1, 5, 3, 4)
    assert one_hot.dtype == torch.float32
    assert torch.equal(one_hot.sum(dim=1), torch.ones(1, 3, 4))
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(one_hot.argmax(dim=1), label[:, 0].long())
    assert one_hot[0, 4, 0, 3] == 1 and one_hot[0, 3, 1, 2] == 1 and one_hot[0, 0, 0, 1] == 0
    # channel 3 is hot only where the label is 3
    assert one_hot[0, 3].sum().item() == 1


def test_one_hot_label_batch_int32():
    label = torch.stack([torch.full((1, 2, 2), 34, dtype=torch.int32), torch.zeros((1, 2, 2), dtype=torch.int32)])
    one_hot = one_hot_label(label, 35)
    assert one_hot.shape == (2, 35, 2, 2)
    assert torch.all(one_hot[0, 34] == 1) and one_hot[0].sum().item() == 4
    assert torch.all(one_hot[1, 0] == 1) and one_hot[1].sum().item() == 4


def test_instance_class():
    ids = torch.tensor([33001, 26000, 7, 65535, 999, 1000], dtype=torch.int32)
    assert instance_class(ids).tolist() == [33, 26, 7, 65, 999, 1]
    assert instance_class(torch.tensor(33001)).item() == 33


# ---------------------------------------------------------------- GAN loss


def crafted_predictions():
    torch.manual_seed(1)
    return [
        [torch.randn(1, 4, 5, 5) * 100, torch.randn(1, 8, 3, 3) * 100, torch.randn(1, 1, 4, 4)],
        [torch.randn(1, 4, 3, 3) * 100, torch.randn(1, 1, 2, 3)],
    ]


@pytest.mark.parametrize('target_is_real', [True, False])
def test_lsgan_uses_last_output_of_each_scale(target_is_real):
    preds = crafted_predictions()
    target = 1.0 if target_is_real else 0.0
    expected = sum(((scale[-1] - target) ** 2).mean() for scale in preds)
    loss = GANLoss(use_lsgan=True)(preds, target_is_real)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # intermediate outputs are ignored
    changed = [[torch.zeros_like(t) for t in scale[:-1]] + [scale[-1]] for scale in preds]
    assert GANLoss(use_lsgan=True)(changed, target_is_real).item() == pytest.approx(loss.item(), rel=1e-7)


def test_lsgan_crafted_values():
    preds = [[torch.full((1, 1, 2, 2), 7.0), torch.tensor([[[[0.5, 1.5]]]])], [torch.tensor([[[[2.0, 0.0, 1.0]]]])]]
    # real: scale0 mean((0.5-1)^2, (1.5-1)^2) = 0.25; scale1 mean(1, 1, 0) = 2/3
    assert GANLoss()(preds, True).item() == pytest.approx(0.25 + 2 / 3, rel=1e-6)
    # fake: scale0 mean(0.25, 2.25) = 1.25; scale1 mean(4, 0, 1) = 5/3
    assert GANLoss()(preds, False).item() == pytest.approx(1.25 + 5 / 3, rel=1e-6)


@pytest.mark.parametrize('target_is_real', [True, False])
def test_bce_gan_loss_applies_sigmoid_to_logits(target_is_real):
    preds = crafted_predictions()
    expected = 0.0
    for scale in preds:
        p = torch.sigmoid(scale[-1].double())
        expected += (-torch.log(p)).mean().item() if target_is_real else (-torch.log(1 - p)).mean().item()
    loss = GANLoss(use_lsgan=False)(preds, target_is_real)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # differs from BCE on the raw logits treated as probabilities (the reference's bug would give nan/inf here)
    assert torch.isfinite(loss)


def test_bce_gan_loss_crafted_value():
    preds = [[torch.tensor([[[[0.0]]]])], [torch.tensor([[[[2.0]]]])]]
    import math

    expected_real = math.log(2) + math.log(1 + math.exp(-2))
    expected_fake = math.log(2) + math.log(1 + math.exp(2))
    assert GANLoss(use_lsgan=False)(preds, True).item() == pytest.approx(expected_real, rel=1e-6)
    assert GANLoss(use_lsgan=False)(preds, False).item() == pytest.approx(expected_fake, rel=1e-6)


# ---------------------------------------------------------------- feature matching


@pytest.mark.parametrize('num_D, n_layers_D, lambda_feat', [(2, 3, 10.0), (3, 2, 4.0)])
def test_feature_matching_loss_value_and_detach(num_D, n_layers_D, lambda_feat):
    torch.manual_seed(2)
    shapes = [(1, 2, 5 - k, 6 - k) for k in range(n_layers_D + 2)]
    pred_fake = [[torch.randn(s, requires_grad=True) for s in shapes] for _ in range(num_D)]
    pred_real = [[torch.randn(s, requires_grad=True) for s in shapes] for _ in range(num_D)]
    # the final score maps must not count: make them wildly different
    for i in range(num_D):
        pred_real[i][-1] = (pred_real[i][-1].detach() + 1000).requires_grad_()

    expected = 0.0
    for i in range(num_D):
        for j in range(n_layers_D + 1):
            diff = (pred_fake[i][j] - pred_real[i][j]).abs().mean().item()
            expected += (1.0 / num_D) * (4.0 / (n_layers_D + 1)) * lambda_feat * diff
    loss = feature_matching_loss(pred_fake, pred_real, num_D, n_layers_D, lambda_feat)
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    loss.backward()
    for i in range(num_D):
        for j in range(n_layers_D + 2):
            assert pred_real[i][j].grad is None, (i, j)
        for j in range(n_layers_D + 1):
            assert pred_fake[i][j].grad is not None and pred_fake[i][j].grad.abs().sum() > 0
        assert pred_fake[i][-1].grad is None


def test_feature_matching_loss_crafted_value():
    fake = [[torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 1, 2), torch.zeros(1, 1, 1, 1)]]
    real = [[torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1, 1), 9.0)]]
    # num_D 1, n_layers_D 1: weight 1 * 4/2 * 10 = 20; L1 terms 0.5 and 1.0
    assert feature_matching_loss(fake, real, 1, 1, 10.0).item() == pytest.approx(20 * 1.5)


# ---------------------------------------------------------------- VGG loss


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """A randomly initialised torchvision VGG19 state_dict on disk, and its `features` loaded from that file."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('vgg') / 'vgg19_random.pth'
    model = vgg19(weights=None)
    for module in model.features:  # torchvision starts the biases at 0: a loss that dropped them would pass
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.bias, 0.0, 0.1)
    torch.save(model.state_dict(), str(path))
    # reference features: a fresh copy of the weights, read back from the same file
    state_dict = torch.load(str(path), map_location='cpu', weights_only=True)
    for parameter in model.parameters():
        parameter.data.zero_()
    model.load_state_dict(state_dict)
    del state_dict
    features = model.features.eval()
    model.classifier = None
    return str(path), features


@pytest.fixture(scope='module')
def vgg_loss(vgg_file):
    return VGGLoss(load_vgg19_features(vgg_file[0]))


def test_vgg_loss_of_identical_images_is_zero(vgg_loss):
    torch.manual_seed(3)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert vgg_loss(image, image.clone()).item() == 0.0


def hand_vgg_loss(features, fake, real) -> float:
    """SPEC's VGG loss by hand: torchvision's `features` layer by layer, L1 at relu1_1..relu5_1 with weights 1/32..1."""
    slices = [(0, 2), (2, 7), (7, 12), (12, 21), (21, 30)]
    weights = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    expected = 0.0
    with torch.no_grad():
        x, y = fake.detach().clone(), real.detach().clone()
        for weight, (start, end) in zip(weights, slices):
            for index in range(start, end):
                x = features[index](x)
                y = features[index](y)
            expected += weight * (x - y).abs().mean().item()
    return expected


def test_vgg_loss_matches_hand_computed_slices(vgg_file, vgg_loss):
    _, features = vgg_file
    torch.manual_seed(4)
    fake = (torch.rand(2, 3, 32, 48) * 2 - 1).requires_grad_()
    real = (torch.rand(2, 3, 32, 48) * 2 - 1).requires_grad_()
    loss = vgg_loss(fake, real)
    expected = hand_vgg_loss(features, fake, real)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(expected, rel=1e-4)

    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    # the real image's features are detached: no gradient reaches it (None, or zeros through the shared batch)
    assert real.grad is None or torch.count_nonzero(real.grad) == 0


def test_vgg_parameters_frozen(vgg_loss):
    parameters = list(vgg_loss.parameters())
    assert len(parameters) == 26  # the 13 convolutions up to relu5_1 (weight + bias), nothing from the classifier
    assert all(not p.requires_grad for p in parameters)


def test_vgg_missing_file_names_the_flags(tmp_path):
    with pytest.raises(ModelError) as info:
        load_vgg19_features(str(tmp_path / "nope.pth"))
    message = str(info.value)
    assert '--vgg_weights' in message and '--no_vgg_loss' in message
    assert 'nope.pth' in message


def test_vgg_non_vgg_file_is_refused(tmp_path):
    path = tmp_path / 'not_vgg.pth'
    torch.save({'weight': torch.zeros(3)}, str(path))
    with pytest.raises(ModelError) as info:
        load_vgg19_features(str(path))
    message = str(info.value)
    assert '--vgg_weights' in message and 'not a torchvision VGG19 state_dict' in message


def test_vgg_download_failure_names_the_flags(monkeypatch):
    import torchvision.models

    calls = []

    def offline_vgg19(*args, **kwargs):
        calls.append(kwargs)
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torchvision.models, 'vgg19', offline_vgg19)
    with pytest.raises(ModelError) as info:
        load_vgg19_features(None)
    message = str(info.value)
    assert calls, 'the download path was not taken'
    assert '--vgg_weights' in message and '--no_vgg_loss' in message
    assert 'no network' in message


def test_model_vgg_loss_is_weighted_by_lambda_feat(vgg_file, dataroot, tmp_path):
    path, features = vgg_file
    lambda_feat = 3.0  # not the default 10, so neither a missing nor a hard-coded weight passes
    flags = [flag for flag in TINY if flag != '--no_vgg_loss']  # this test wants the VGG loss
    opt = TrainOptions('', METHODS).parse(
        flags + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--vgg_weights', path, '--lambda_feat', str(lambda_feat)],
        save=False,
    )
    torch.manual_seed(0)
    model = Pix2PixHDModel(opt, **read_files(opt))  # read_files: VGG19 from --vgg_weights, as builders.py reads it
    data = next(iter(build_data(opt)[1]))
    losses, fake = model(data['label'], data['inst'], data['image'], data['feat'], infer=True)
    expected = lambda_feat * hand_vgg_loss(features, fake, data['image'])
    assert expected > 0
    assert losses['G_VGG'].item() == pytest.approx(expected, rel=1e-4)


def test_vgg_loss_runs_in_bf16_under_amp_bf16(vgg_file, dataroot, tmp_path):
    """--amp bf16: the trainer's autocast covers the VGG loss, so VGG19's convolutions run in bfloat16 (nothing to add
    for issue 32); the loss stays within bf16's rounding bound of the float32 loss on the same images."""
    path, _ = vgg_file
    flags = [flag for flag in TINY if flag != '--no_vgg_loss']
    opt = TrainOptions('', METHODS).parse(
        flags + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--vgg_weights', path, '--amp', 'bf16'], save=False
    )
    torch.manual_seed(0)
    trainer = Pix2PixHDTrainer(opt)
    vgg = trainer.model.criterionVGG
    convs = [module for module in vgg.modules() if isinstance(module, torch.nn.Conv2d)]
    dtypes: list = []
    for conv in convs:
        conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    losses, _ = trainer.train_step(next(iter(build_data(opt)[1])))
    assert dtypes == [torch.bfloat16] * (2 * len(convs))  # the real photo's pass and the fake's, every convolution
    assert torch.isfinite(losses['G_VGG'])

    torch.manual_seed(1)
    fake, real = torch.rand(1, 3, 64, 128) * 2 - 1, torch.rand(1, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        exact = float(vgg(fake, real))
        with trainer.autocast():
            rounded = float(vgg(fake, real))
        fake_features, real_features = vgg.vgg(fake), vgg.vgg(real)
    # bf16 keeps 8 significant bits (unit roundoff u = 2^-9). Each convolution rounds its input and weights to bf16 and
    # its output from float32 accumulation back: to first order each adds at most 3u of relative error (normwise), so
    # the k-th feature map is off by at most 3u times the convolutions before it, and an L1 term by that share of
    # mean|fake feature| + mean|real feature|.
    u = 2**-9
    depths = [sum(1 for conv in convs if any(conv is module for module in getattr(vgg.vgg, f'slice{k}').modules())) for k in range(1, 6)]
    bound = sum(
        weight * 3 * u * sum(depths[: k + 1]) * float(f.abs().mean() + r.abs().mean())
        for k, (weight, f, r) in enumerate(zip(VGG_WEIGHTS, fake_features, real_features))
    )
    assert exact > 0 and rounded != exact  # the second pass really ran in bf16
    assert abs(rounded - exact) <= bound, (rounded, exact, bound)
