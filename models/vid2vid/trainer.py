"""vid2vid's training iteration, in its authors' order (their train.py): a clip is cut into forwards of
--max_frames_per_gpu frames; after each, the losses of G, D and every temporal D that has enough frames, then one
Adam step each, G first. The temporal discriminators see runs of n_frames_D frames at frame rates 1, 1/n_frames_D,
... (their 'skipped frames'), drawn from this forward's frames and the ones before it in the clip.

The reference flow (frame t to frame t-1) comes with the data (flow files, the synthetic video's exact flow) or
from models/vid2vid/flow.py's estimator; flows between frames further apart are the consecutive ones composed.
"""

import argparse
from dataclasses import dataclass, field

import torch

from util.errors import TrainingError
from util.flow import compose_flows

from ..common.trainer_base import TrainerBase
from .model import GeneratedClip, Vid2VidModel

# A generator's output heads (image, flow, weight, foreground image): the losses see only the finest scale's.
COARSE_HEADS = ('model_final_img', 'model_final_flow', 'model_final_w', 'indv_final')


@dataclass
class ClipHistory:
    """The frames of the clip so far that the temporal discriminators may still need: real, G's (detached once
    past), and the consecutive reference flows / confidences (entry i: frame i to frame i-1)."""

    keep: int  # frames kept: n_frames_D**(n_scales_temporal-1) * (n_frames_D-1), the longest run's span
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def extend(self, **new: torch.Tensor) -> dict[str, torch.Tensor]:
        """Append this forward's frames (B x n x ...); returns every frame to draw runs from (old ones detached)."""
        joined = {
            name: torch.cat((self.tensors[name].detach(), value), 1) if name in self.tensors else value for name, value in new.items()
        }
        self.tensors = {name: value[:, -self.keep :] if value.shape[1] > self.keep else value for name, value in joined.items()}
        return joined


def skipped_runs(frames: torch.Tensor, n_new: int, n_frames_D: int, scale: int) -> list[tuple[int, int]]:
    """(first, step) of each run of n_frames_D frames at `scale` (step n_frames_D**scale) ending in one of the last
    `n_new` frames, every n_frames_D-th from the newest (the authors' get_skipped_frames)."""
    step = n_frames_D**scale
    span = step * (n_frames_D - 1)
    length = frames.shape[1]
    runs = []
    for back in range(0, min(length - span, n_new), n_frames_D):
        runs.append((length - 1 - back - span, step))
    return runs


class Vid2VidTrainer(TrainerBase):
    """Adam for G (all spatial scales, and E with instance features), D and each temporal D; one iteration = one clip."""

    def __init__(
        self,
        opt: argparse.Namespace | None,
        model: Vid2VidModel,
        lr: float = 0.0002,
        beta1: float = 0.5,
        ttur: bool = False,
        frames_per_forward: int = 1,
    ) -> None:
        """`opt` None: a trainer driven by hand (the fixture test) with `lr`, `beta1`, `ttur`, `frames_per_forward`;
        else --lr, --beta1, --TTUR, --max_frames_per_gpu."""
        super().__init__(model, opt, lr)
        self.model: Vid2VidModel = model
        if opt is not None:
            beta1, ttur, frames_per_forward = opt.beta1, opt.TTUR, opt.max_frames_per_gpu
        self.frames_per_forward = frames_per_forward
        # TTUR (the authors'): G at lr/2, D at 2 lr, both betas (0, 0.9); the temporal Ds keep lr and beta1.
        self.lr_factors = {'optimizer_G': 0.5, 'optimizer_D': 2.0} if ttur else {}
        betas = (0.0, 0.9) if ttur else (beta1, 0.999)
        # Below the finest scale a generator's output heads only make its own scale's frames, which the next frame
        # gets detached as previous frames: no loss reaches them. Frozen, so that DDP (which waits for a gradient of
        # every trained parameter in each backward) leaves them out; in one process Adam skips them either way (no
        # gradient). They stay in the optimiser: its saved state keeps the same parameters.
        for net in model.generators()[:-1]:
            for name in COARSE_HEADS:
                if hasattr(net, name):
                    getattr(net, name).requires_grad_(False)
        g_params = [param for net in model.generators() for param in net.parameters()]
        if model.netE is not None:  # E trains with G, in G's optimiser (pix2pixHD's)
            g_params += list(model.netE.parameters())
        self.optimizer_G = torch.optim.Adam(g_params, lr=self.lr * self.lr_factors.get('optimizer_G', 1.0), betas=betas)
        self.optimizer_D = torch.optim.Adam(model.netD.parameters(), lr=self.lr * self.lr_factors.get('optimizer_D', 1.0), betas=betas)
        self.optimizers_D_T = [
            torch.optim.Adam(net.parameters(), lr=self.lr, betas=(beta1, 0.999)) for net in model.temporal_discriminators()
        ]
        self.last_forward: dict[str, torch.Tensor] = {}  # the last forward's tensors, for the training page and tests

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser}."""
        named: dict[str, torch.optim.Optimizer] = {'optimizer_G': self.optimizer_G, 'optimizer_D': self.optimizer_D}
        named.update({f'optimizer_D_T{scale}': optimizer for scale, optimizer in enumerate(self.optimizers_D_T)})
        return named

    def _set_lr(self, lr: float) -> None:
        """The schedule's lr for G and D (times TTUR's factors); the temporal Ds keep --lr, as the authors' decay
        (Vid2VidModelD.update_learning_rate) sets optimizer_D's alone."""
        self.current_lr = lr
        for name in ('optimizer_G', 'optimizer_D'):
            for group in self.optimizers()[name].param_groups:
                group['lr'] = lr * self.lr_factors.get(name, 1.0)

    def iterate(self, data: dict) -> tuple[dict, torch.Tensor]:
        """One clip (data: 'label' B x T x 1 x H x W, 'image' B x T x 3 x H x W, 'flow' B x (T-1) x 2 x H x W and
        'flow_mask' B x (T-1) x 1 x H x W, entry t-1 the flow of frame t to frame t-1): the last forward's losses and
        every frame G made (B x (T - n_frames_G + 1) x 3 x H x W)."""
        model = self.model
        tG = model.arch.n_frames_G
        d = model.discriminators
        assert d is not None
        labels = model.encode_labels(data['label'], data.get('inst'))
        images = data['image'].to(model.device, non_blocking=True)
        pool = model.pool_map(data['label'], data.get('inst')) if model.arch.use_features else None
        if data['flow'].numel():
            flows = data['flow'].to(model.device, non_blocking=True)
            masks = data['flow_mask'].to(model.device, non_blocking=True)
        elif model.flow_net is not None:
            flows, masks = model.flow_net(images)
        else:
            raise TrainingError(f"{data['path'][0]}: no flow files for this clip; add <phase>_flow/ or pass --flow_weights")
        batch, n_total = images.shape[:2]
        n_made = n_total - tG + 1
        per_forward = max(1, min(self.frames_per_forward, n_made))
        history = ClipHistory(keep=max(1, d.n_frames_D ** (d.n_scales_temporal - 1) * (d.n_frames_D - 1)))
        previous = model.first_previous(images, batch, tuple(images.shape[-2:]))  # type: ignore[arg-type]
        made: list[torch.Tensor] = []
        last_made: torch.Tensor | None = None
        losses: dict = {}
        for start in range(0, n_made // per_forward * per_forward, per_forward):
            # Frames start .. start + tG - 2 + per_forward: G makes the last per_forward of them.
            stop = start + tG - 1 + per_forward
            # --no_first_img: the authors make every frame of a clip's first forward from the hallucination branch alone.
            raw_only = per_forward if model.losses.no_first_img and start == 0 else 0
            # With instance features G's labels carry each frame's E features of its own photo; D's stay the labels alone.
            g_labels = labels[:, start:stop]
            if pool is not None:
                g_labels = model.add_features(g_labels, pool[:, start:stop], images[:, start:stop])
            generated = model.generate(g_labels, previous, raw_only=raw_only)
            previous = generated.last
            real_B = images[:, start + tG - 1 : stop]
            real_B_prev = images[:, start + tG - 2 : stop - 1]
            # Frame t's flow to t-1 is entry t-1.
            flow_ref, conf_ref = flows[:, start + tG - 2 : stop - 1], masks[:, start + tG - 2 : stop - 1]
            # The frames before G's: the real one before the clip's first made frame, then G's (detached).
            before = real_B_prev[:, :1] if last_made is None else last_made
            fake_B_prev = torch.cat((before, generated.images[:, :-1].detach()), 1)
            last_made = generated.images[:, -1:].detach()
            losses = model.image_losses(labels[:, start + tG - 1 : stop], real_B, real_B_prev, generated, fake_B_prev, flow_ref, conf_ref)
            losses.update(self.temporal_losses(history, real_B, generated, flow_ref, conf_ref))
            self.step(losses)
            made.append(generated.images.detach())
            self.remember(real_B, generated, flow_ref, conf_ref)
        return losses, torch.cat(made, 1).flatten(0, 1)

    def temporal_losses(
        self, history: ClipHistory, real_B: torch.Tensor, generated: GeneratedClip, flow_ref: torch.Tensor, conf_ref: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every temporal scale's losses on the runs ending in this forward's frames (zeros where a scale has none yet)."""
        d = self.model.discriminators
        assert d is not None
        frames = history.extend(real=real_B, fake=generated.images, flow=flow_ref, conf=conf_ref)
        losses = {}
        for scale in range(d.n_scales_temporal):
            runs = skipped_runs(frames['real'], real_B.shape[1], d.n_frames_D, scale)
            if not runs:
                zero = real_B.new_zeros(())
                losses.update({f'{name}{scale}': zero for name in ('G_T_GAN', 'G_T_GAN_Feat', 'D_T_real', 'D_T_fake', 'G_T_Warp')})
                continue
            picks = [torch.arange(first, first + step * d.n_frames_D, step, device=real_B.device) for first, step in runs]
            real = torch.cat([frames['real'][:, index] for index in picks])
            fake = torch.cat([frames['fake'][:, index] for index in picks])
            run_flows = []
            for index, (_, step) in zip(picks, runs):
                # Between run frames k-1 and k: the consecutive flows of the frames after k-1 up to k, composed.
                pairs = [
                    compose_flows(frames['flow'][:, frame - step + 1 : frame + 1], frames['conf'][:, frame - step + 1 : frame + 1])[0]
                    for frame in index[1:].tolist()
                ]
                run_flows.append(torch.stack(pairs, 1))
            losses.update(self.model.temporal_losses(scale, real, fake, torch.cat(run_flows)))
        return losses

    def step(self, losses: dict[str, torch.Tensor]) -> None:
        """loss_G = every G term; loss_D = (D_fake + D_real) / 2; each temporal D's likewise; G's Adam step first, as the authors."""
        d = self.model.discriminators
        assert d is not None
        names_G = ('G_GAN', 'G_GAN_Feat', 'G_VGG', 'G_Warp', 'F_Flow', 'F_Warp', 'W')
        loss_G = losses[names_G[0]]
        for name in names_G[1:]:
            loss_G = loss_G + losses[name]
        temporal_D = []
        for scale in range(d.n_scales_temporal):
            loss_G = loss_G + losses[f'G_T_GAN{scale}'] + losses[f'G_T_GAN_Feat{scale}'] + losses[f'G_T_Warp{scale}']
            temporal_D.append((losses[f'D_T_fake{scale}'] + losses[f'D_T_real{scale}']) * 0.5)
        loss_D = (losses['D_fake'] + losses['D_real']) * 0.5
        params_G = [param for group in self.optimizer_G.param_groups for param in group['params'] if param.requires_grad]
        # Each backward reaches only its own network's parameters (G's passes through D leave D's gradients alone,
        # which the authors compute and then zero): under DDP each network's all-reduce runs in its own backward.
        self.optimizer_G.zero_grad(set_to_none=True)
        torch.autograd.backward(loss_G, inputs=params_G)
        self.optimizer_G.step()
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D.backward(inputs=list(self.model.netD.parameters()))
        self.optimizer_D.step()
        for scale, (loss, optimizer) in enumerate(zip(temporal_D, self.optimizers_D_T)):
            if not loss.requires_grad:  # the scale had no run of frames yet
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=list(self.model.temporal_discriminators()[scale].parameters()))
            optimizer.step()

    def remember(self, real_B: torch.Tensor, generated: GeneratedClip, flow_ref: torch.Tensor, conf_ref: torch.Tensor) -> None:
        """Keep the last forward's first sample (detached) for the training page."""
        kept = {'real': real_B, 'fake': generated.images, 'raw': generated.raw, 'flow_ref': flow_ref, 'conf_ref': conf_ref}
        if generated.flow is not None and generated.weight is not None:
            kept.update(flow=generated.flow, weight=generated.weight)
        self.last_forward = {name: value[0].detach() for name, value in kept.items()}
