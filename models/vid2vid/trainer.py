"""vid2vid's training iteration, in its authors' order (their train.py): a clip is cut into forwards of
--max_frames_per_gpu frames; after each, the losses of G, D and every temporal D that has enough frames, then one
Adam step each, G first. The temporal discriminators see runs of n_frames_D frames at frame rates 1, 1/n_frames_D,
... (their 'skipped frames'), drawn from this forward's frames and the ones before it in the clip.

The reference flow (frame t to frame t-1) comes with the data (flow files, the synthetic video's exact flow) or
from models/vid2vid/flow.py's estimator; flows between frames further apart are the consecutive ones composed.

The authors' schedule besides the lr: a loss reaches back through more of G's frames as the clip grows
(--max_frames_backpropagate), and with --niter_fix_global only the finest spatial scale trains at first.
"""

import argparse
import math
from dataclasses import dataclass, field

import torch

from util.distributed import bare
from util.errors import TrainingError
from util.flow import compose_flows

from ..common.trainer_base import TrainerBase
from .model import GeneratedClip, Vid2VidModel

# A generator's output heads (image, flow, weight, foreground image): the losses see only the finest scale's.
COARSE_HEADS = ('model_final_img', 'model_final_flow', 'model_final_w', 'indv_final')


# A temporal discriminator's input: runs of n_frames_D frames, real and G's (N x n_frames_D x C x H x W), and the flows
# between a run's neighbouring frames (N x (n_frames_D-1) x 2 x H x W, pixels).
Runs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class ClipHistory:
    """The frames of the clip so far that the temporal discriminators may still need: real, G's (detached once
    past), and the consecutive reference flows / confidences (entry i: frame i to frame i-1)."""

    n_frames_D: int
    n_scales: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def keep(self) -> int:
        """Frames kept: n_frames_D**(n_scales-1) * (n_frames_D-1), the longest run's span."""
        return max(1, self.n_frames_D ** (self.n_scales - 1) * (self.n_frames_D - 1))

    def extend(self, **new: torch.Tensor) -> dict[str, torch.Tensor]:
        """Append this forward's frames (B x n x ...); returns every frame to draw runs from (old ones detached)."""
        joined = {
            name: torch.cat((self.tensors[name].detach(), value), 1) if name in self.tensors else value for name, value in new.items()
        }
        self.tensors = {name: value[:, -self.keep :] if value.shape[1] > self.keep else value for name, value in joined.items()}
        return joined

    def runs(self, new: dict[str, torch.Tensor]) -> list[Runs | None]:
        """Per temporal scale, the runs ending in this forward's frames (`new`: 'real', 'fake', 'flow', 'conf', B x n x
        ...) with the flows across their skipped frames composed; None where a scale has none yet."""
        frames = self.extend(**new)
        found: list[Runs | None] = []
        for scale in range(self.n_scales):
            runs = skipped_runs(frames['real'], new['real'].shape[1], self.n_frames_D, scale)
            if not runs:
                found.append(None)
                continue
            picks = [torch.arange(first, first + step * self.n_frames_D, step, device=frames['real'].device) for first, step in runs]
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
            found.append((real, fake, torch.cat(run_flows)))
        return found


@dataclass
class SparseRuns:
    """--sparse_D, the authors' sparse temporal discriminators (their get_skipped_frames_sparse): at temporal scale s
    only the made frames whose index in the clip is a multiple of n_frames_D**s count, and they form runs of n_frames_D
    that follow one another (each starting from the last n_frames_D - 1 frames of the one before, or after it where a
    forward brings a whole run's frames). A run's flows are its frames' own flows to the frame just before each, as the
    authors take them: across skipped frames that is not the flow between the run's frames (they save the flow network's
    passes on them)."""

    n_frames_D: int
    n_scales: int
    made: int = 0  # the clip's frames made before this forward
    kept: list[dict[str, torch.Tensor]] = field(default_factory=list)  # per scale, the frames the next run may start from

    def runs(self, new: dict[str, torch.Tensor]) -> list[Runs | None]:
        """Per temporal scale, the runs this forward's frames (`new`: 'real', 'fake', 'flow', B x n x ...) complete; None
        where they complete none."""
        tD = self.n_frames_D
        if not self.kept:
            self.kept = [{} for _ in range(self.n_scales)]
        found: list[Runs | None] = []
        for scale, kept in enumerate(self.kept):
            every = tD**scale
            if kept and kept['real'].shape[1] % tD == 0:  # all of them made runs: the next starts from the last tD - 1
                kept = {name: value[:, 1 - tD :] for name, value in kept.items()}
            first = -self.made % every  # the first new frame whose index in the clip is a multiple of `every`
            picked = {name: new[name][:, first::every] for name in ('real', 'fake', 'flow')}
            if picked['real'].shape[1]:
                kept = {name: torch.cat((kept[name].detach(), value), 1) if kept else value for name, value in picked.items()}
            length = kept['real'].shape[1] if kept else 0
            if length >= tD:
                kept = {name: value[:, length % tD :] for name, value in kept.items()}
            self.kept[scale] = kept
            if length < tD:
                found.append(None)
                continue
            real, fake, flow = (kept[name].reshape(-1, tD, *kept[name].shape[2:]) for name in ('real', 'fake', 'flow'))
            found.append((real, fake, flow[:, 1:]))
        self.made += new['real'].shape[1]
        return found


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
        """`opt` None: a trainer driven by hand (the fixture test) with `lr`, `beta1`, `ttur`, `frames_per_forward` and
        the authors' defaults of the rest; else --lr, --beta1, --TTUR, --max_frames_per_gpu, --max_frames_backpropagate,
        --niter_step, --niter_fix_global, --sparse_D."""
        super().__init__(model, opt, lr)
        self.model: Vid2VidModel = model
        self.max_backprop, self.niter_step, self.niter_fix_global, self.sparse_D = 1, 1, 0, False
        if opt is not None:
            beta1, ttur, frames_per_forward = opt.beta1, opt.TTUR, opt.max_frames_per_gpu
            self.max_backprop, self.niter_step = opt.max_frames_backpropagate, opt.niter_step
            self.niter_fix_global, self.sparse_D = opt.niter_fix_global, opt.sparse_D
        self.frames_per_forward = frames_per_forward
        self.epoch = 1  # the epoch being trained (end_epoch and a resume move it), which the schedule above follows
        # TTUR (the authors'): G at lr/2, D at 2 lr, both betas (0, 0.9); the temporal Ds keep lr and beta1.
        self.lr_factors = {'optimizer_G': 0.5, 'optimizer_D': 2.0} if ttur else {}
        self.betas = (0.0, 0.9) if ttur else (beta1, 0.999)
        self.trained_parts: tuple[bool, bool] | None = None  # what train_generators last set
        self.train_generators(backprop=1)
        self.optimizer_G = self.make_optimizer_G()
        self.optimizer_D = torch.optim.Adam(model.netD.parameters(), lr=self.lr * self.lr_factors.get('optimizer_D', 1.0), betas=self.betas)
        self.optimizers_D_T = [
            torch.optim.Adam(net.parameters(), lr=self.lr, betas=(beta1, 0.999)) for net in model.temporal_discriminators()
        ]
        self.last_forward: dict[str, torch.Tensor] = {}  # the last forward's tensors, for the training page and tests

    def make_optimizer_G(self) -> torch.optim.Optimizer:
        """A fresh Adam over every spatial scale's generator (and E, which trains with G as pix2pixHD's) at the current
        lr: the parameters that take no gradient (train_generators) stay in it, so that its saved state always holds
        the same parameters; Adam skips them."""
        params = [param for net in self.model.generators() for param in net.parameters()]
        if self.model.netE is not None:
            params += list(self.model.netE.parameters())
        return torch.optim.Adam(params, lr=self.current_lr * self.lr_factors.get('optimizer_G', 1.0), betas=self.betas)

    def coarse_fixed(self) -> bool:
        """Whether the coarser spatial scales are fixed this epoch (--niter_fix_global: its first epochs)."""
        return self.epoch <= self.niter_fix_global

    def frames_backpropagated(self, per_forward: int) -> int:
        """The authors' frames to backpropagate (their n_frames_bp) for a clip of forwards of `per_forward` frames: 1, then
        doubled with the clip length every --niter_step epochs up to --max_frames_backpropagate, and cut to divide
        the forward into pieces of equal length (at most per_forward)."""
        most = min(self.max_backprop, 2 ** ((self.epoch - 1) // self.niter_step))
        return per_forward // math.ceil(per_forward / most)

    def train_generators(self, backprop: int) -> None:
        """Which generator parameters take gradients: the finest scale's all; a coarser scale's none while
        --niter_fix_global fixes it (what the authors' detached coarse outputs do: no loss reaches it), else all but
        its output heads, which a loss reaches only through the frames that the next frames get undetached (backprop
        > 1). Under torchrun a change re-wraps the coarser generators: DDP waits for a gradient of exactly the
        parameters that take one."""
        parts = (self.coarse_fixed(), backprop > 1)
        if parts == self.trained_parts:
            return
        self.trained_parts = parts
        fixed, heads = parts
        for net in self.model.generators()[:-1]:
            net = bare(net)
            net.requires_grad_(not fixed)
            for name in COARSE_HEADS:
                if hasattr(net, name) and not heads:
                    getattr(net, name).requires_grad_(False)
        if self.data_parallel:
            for scale in range(self.model.arch.n_scales_spatial - 1):
                net = self.model.networks_by_name()[f'G{scale}']
                setattr(self.model, f'netG{scale}', net)
                if any(param.requires_grad for param in net.parameters()):
                    self.wrap_network(f'G{scale}')

    def end_epoch(self, epoch: int) -> None:
        """`epoch` has ended: once --niter_fix_global epochs have, every spatial scale trains, under a fresh Adam for G
        as the authors' update_fixed_params makes one (at the current lr and betas); then the lr schedule (TrainerBase)."""
        self.epoch = epoch + 1
        if self.niter_fix_global and epoch == self.niter_fix_global:
            self.optimizer_G = self.make_optimizer_G()
            print('------------ Now training every spatial scale -----------')
        super().end_epoch(epoch)

    def restore_training_state(self, state: dict, changed: dict | None = None) -> None:
        """TrainerBase's, and the resumed epoch, which the schedule of what trains follows."""
        super().restore_training_state(state, changed)
        self.epoch = state['epoch']

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
        history = (SparseRuns if self.sparse_D else ClipHistory)(d.n_frames_D, d.n_scales_temporal)
        backprop = self.frames_backpropagated(per_forward)
        self.train_generators(backprop)
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
            generated = model.generate(g_labels, previous, raw_only, backprop)
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
            frames = {'real': real_B, 'fake': generated.images, 'flow': flow_ref, 'conf': conf_ref}
            losses.update(self.temporal_losses(history.runs(frames)))
            self.step(losses)
            made.append(generated.images.detach())
            self.remember(real_B, generated, flow_ref, conf_ref)
        return losses, torch.cat(made, 1).flatten(0, 1)

    def temporal_losses(self, runs: list[Runs | None]) -> dict[str, torch.Tensor]:
        """Every temporal scale's losses on its runs of frames (zeros where a scale has none)."""
        losses = {}
        for scale, scale_runs in enumerate(runs):
            if scale_runs is None:
                zero = torch.zeros((), device=self.device)
                losses.update({f'{name}{scale}': zero for name in ('G_T_GAN', 'G_T_GAN_Feat', 'D_T_real', 'D_T_fake', 'G_T_Warp')})
                continue
            losses.update(self.model.temporal_losses(scale, *scale_runs))
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
