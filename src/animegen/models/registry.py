"""Which model families exist, where their code lives and which params their sections take.

Adding a family means one new file ``src/animegen/models/<family>.py`` defining a subclass of
:class:`animegen.models.base.GenerativeModel` named ``Model``, and one entry here.  This module imports
no torch: ``params.yaml`` validation (run before every stage and when the Snakefile is parsed) uses the
schemas below without loading any network code; the family blocks here are the only place their keys
are declared.  The module of a family is a code dependency of the stages that rebuild its model
(``train``, ``sample``, ``track``: see :mod:`animegen.codedeps`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from animegen.schema_types import BETAS, BOOL, NONNEG_INT, NONNEG_NUM, POS_INT, POS_NUM, STR, UNIT, obj


def _power_of_two(minimum: int):
    def check(model: dict, size: int):
        if size < minimum or size & (size - 1):
            return "dataset", f"{model['family']} needs a power-of-two image size of at least {minimum} px, got {size}"
        return None

    return check


def _ddpm_check(model: dict, size: int):
    factor = 2 ** (len(model["net"]["dim_mults"]) - 1)
    if size % factor:
        return "net.dim_mults", f"a Unet with {len(model['net']['dim_mults'])} levels needs an image size divisible by {factor}, got {size}"
    if model["sample"]["sampling_timesteps"] > model["net"]["timesteps"]:
        return "sample.sampling_timesteps", f"must not exceed net.timesteps ({model['net']['timesteps']})"
    return None


def _cyclegan_check(model: dict, size: int):
    if size < 32 or size % 4:
        return "dataset", f"CycleGAN needs an image size of at least 32 px divisible by 4 (two halvings), got {size}"
    return None


def _councilgan_check(model: dict, size: int):
    net = model["net"]
    if net["n_councils"] < 2:
        return "net.n_councils", f"the council loss compares a member with the others: at least 2 councils, got {net['n_councils']}"
    if net["member"] >= net["n_councils"]:
        return "net.member", f"member {net['member']} is not one of the {net['n_councils']} councils (0..{net['n_councils'] - 1})"
    need = max(2 ** net["n_downsample"], 2 ** (net["dis_layers"] + net["dis_scales"] - 1))
    if size < need or size % 2 ** net["n_downsample"]:
        return "dataset", (f"Council GAN (n_downsample {net['n_downsample']}, dis_layers {net['dis_layers']}, dis_scales "
                           f"{net['dis_scales']}) needs an image size of at least {need} px divisible by {2 ** net['n_downsample']}, got {size}")
    return None


def _pix2pixhd_check(model: dict, size: int):
    net = model["net"]
    factor = 2 ** net["n_downsample"]
    need = max(factor, 2 ** (net["n_layers_d"] + net["num_d"] - 1))
    if size < need or size % factor:
        return "dataset", (f"pix2pixHD (n_downsample {net['n_downsample']}, n_layers_d {net['n_layers_d']}, num_d {net['num_d']}) "
                           f"needs an image size of at least {need} px divisible by {factor}, got {size}")
    return None


def _animegan_check(model: dict, size: int):
    if size < 16 or size % 4:
        return "dataset", f"AnimeGAN needs an image size of at least 16 px divisible by 4 (two halvings), got {size}"
    return None


# A pretrained feature network (animegen.models.backbones): a torchvision arch, its weights (`packaged`:
# the ones an installed package ships, mobilenet_v2 only; a path inside the workspace; `random`: tests
# only, recorded as such) and the layer whose features the loss compares ("" = the arch's default).
BACKBONE = obj(
    {
        "arch": {"enum": ["vgg19", "mobilenet_v2", "resnet18", "resnet50", "resnet101"]},
        "weights": STR,
        "layer": {"type": "string"},
    }
)


@dataclass(frozen=True)
class Family:
    module: str  # import path of the file defining ``Model``
    kind: str  # "unconditional" | "translation"
    net: dict  # JSON schema of models.<name>.net (architecture and optimiser)
    sample: dict  # JSON schema of models.<name>.sample (sampling-only settings: no retraining when changed)
    check: "Callable[[dict, int], tuple[str, str] | None]" = lambda model, size: None
    # ^ what a schema cannot say: (key below models.<name>, message) when the model section does not fit
    #   the dataset's image size; called by params validation.
    needs_pairs: "Callable[[dict], bool]" = lambda net: False
    # ^ translation families: whether a net section trains on pairs (row i of b is row i of a's partner);
    #   validation then asks for translators.<name>.paired: true.


FAMILIES: dict[str, Family] = {
    # PyTorch examples' DCGAN generalised to 32..128 px (one block per doubling); its defaults.
    "dcgan": Family(
        module="animegen.models.dcgan",
        kind="unconditional",
        net=obj({"nz": POS_INT, "ngf": POS_INT, "ndf": POS_INT, "lr": POS_NUM, "betas": BETAS}),
        sample=obj({}),
        check=_power_of_two(16),
    ),
    # StyleGAN2 in pure PyTorch (no custom CUDA ops), optional DiffAugment, lazy R1, path-length reg.
    "stylegan2": Family(
        module="animegen.models.stylegan2",
        kind="unconditional",
        net=obj(
            {
                "z_dim": POS_INT,
                "w_dim": POS_INT,
                "mapping_layers": POS_INT,
                "channel_base": POS_INT,  # channels at resolution r: min(channel_base // r, channel_max)
                "channel_max": POS_INT,
                "mbstd_group": POS_INT,
                "lr": POS_NUM,
                "mapping_lr_mult": POS_NUM,
                "betas": BETAS,
                "r1_gamma": NONNEG_NUM,
                "r1_every": POS_INT,  # lazy regularisation interval (16 in StyleGAN2)
                "pl_weight": NONNEG_NUM,  # 0 disables path-length regularisation
                "pl_every": POS_INT,
                "pl_decay": UNIT,
                "style_mixing": UNIT,
                "diffaugment": {"type": "string", "pattern": r"^((color|translation|cutout)(,(color|translation|cutout))*)?$"},
            }
        ),
        sample=obj({"truncation_psi": {"type": "number", "minimum": 0, "maximum": 1}}),
        check=_power_of_two(8),
    ),
    # lucidrains' Unet + GaussianDiffusion (denoising-diffusion-pytorch, pinned); study A's DDPM and,
    # with dim_mults [1, 4, 16], its "hourglass" DDPM.
    "ddpm": Family(
        module="animegen.models.ddpm",
        kind="unconditional",
        net=obj(
            {
                "dim": POS_INT,
                "dim_mults": {"type": "array", "items": POS_INT, "minItems": 1},
                "timesteps": POS_INT,
                "objective": {"enum": ["pred_noise", "pred_x0", "pred_v"]},
                "beta_schedule": {"enum": ["linear", "cosine", "sigmoid"]},
                "loss": {"enum": ["l1", "l2"]},  # l2: the pinned library's own loss; l1: its early releases'
                "dropout": UNIT,
                "lr": POS_NUM,
                "betas": BETAS,
                "max_grad_norm": NONNEG_NUM,  # 0 disables clipping (the library's Trainer clips at 1.0)
            }
        ),
        sample=obj({"sampling_timesteps": POS_INT, "ddim_eta": NONNEG_NUM}),
        check=_ddpm_check,
    ),
    # Image-to-image translation (params section translators:).  Study C's CycleGAN, optionally with its
    # CAM attention; defaults of the reference implementation where the study is silent.
    "cyclegan": Family(
        module="animegen.models.cyclegan",
        kind="translation",
        net=obj(
            {
                "ngf": POS_INT,  # generator channels after the first conv (study C: 64)
                "ndf": POS_INT,  # discriminator channels of the first conv (study C: 64)
                "n_blocks": POS_INT,  # residual blocks (study C: 4; the reference resnet_9blocks: 9)
                "lambda_cyc": NONNEG_NUM,  # cycle-consistency weight (reference: 10)
                "lambda_identity": NONNEG_NUM,  # identity loss, as a share of lambda_cyc (reference 0.5; study C: 0 = off)
                "pool_size": NONNEG_INT,  # earlier fakes the discriminators see (reference: 50; 0 = none)
                "lr": POS_NUM,
                "betas": BETAS,
                "lr_constant_steps": NONNEG_INT,  # steps at full lr ...
                "lr_decay_steps": NONNEG_INT,  # ... then linear decay to 0 over this many (0 = constant lr)
                "cam_generator": BOOL,  # CycleGAN + CAM: the input's Grad-CAM map scales the residual blocks
                "cam_discriminator": BOOL,  # ... and the discriminator's features before its last layer
            }
        ),
        sample=obj({}),
        check=_cyclegan_check,
    ),
    # Study D: AnimeGAN (v1 networks, v2's generator as a switch) with its content, Gram, colour and
    # adversarial losses, and study D's skin colour and face feature losses, Huber and MobileNet.
    "animegan": Family(
        module="animegen.models.animegan",
        kind="translation",
        net=obj(
            {
                "generator": {"enum": ["v1", "v2"]},  # v1: AnimeGAN's (InstanceNorm); v2: AnimeGANv2's (LayerNorm)
                "ch": POS_INT,  # base width (the reference: 64)
                "n_res": POS_INT,  # inverted residual blocks (v1: 8, v2: 4)
                "n_dis": {"type": "integer", "minimum": 1, "maximum": 6},  # discriminator scales (reference: 3)
                "spectral_norm": BOOL,  # on every discriminator conv (reference: true)
                "init": {"enum": ["he", "normal"]},  # conv weights: N(0, 2/fan_in) (AnimeGANv2's TF initialiser) | N(0, 0.02)
                "lr_g": POS_NUM,
                "lr_d": POS_NUM,
                "betas": BETAS,
                "init_steps": NONNEG_INT,  # G alone on the content loss first (reference: 5 epochs)
                "init_lr": POS_NUM,
                "adv_weight": NONNEG_NUM,  # G's LSGAN weight (reference: 300)
                "d_adv_weight": POS_NUM,  # D's (reference: 300)
                "d_weights": {"type": "array", "items": NONNEG_NUM, "minItems": 4, "maxItems": 4},  # real, fake, gray, smooth
                "content_weight": NONNEG_NUM,
                "gram_weight": NONNEG_NUM,
                "color_weight": NONNEG_NUM,
                "tv_weight": NONNEG_NUM,  # AnimeGANv2's total variation (v1: 0)
                "skin_weight": NONNEG_NUM,  # study D: 2.8 (0: off)
                "face_weight": NONNEG_NUM,  # study D: 2 (0: off)
                "huber": {"type": "array", "items": {"enum": ["content", "gram", "color", "skin", "face"]}, "uniqueItems": True},
                "huber_delta": POS_NUM,
                "content_backbone": BACKBONE,
                "face_backbone": BACKBONE,
            }
        ),
        sample=obj({}),
        check=_animegan_check,
    ),
    # Study B: Council GAN (the reference's anime config where the study is silent), its two settings'
    # switches (size, councils, AdaIN vs InstanceNorm, batch) and an optional paired L1 term.
    "councilgan": Family(
        module="animegen.models.councilgan",
        kind="translation",
        net=obj(
            {
                "n_councils": POS_INT,  # members (reference: 4; study B's proposal: 3); at least 2
                "member": NONNEG_INT,  # the member whose EMA and snapshots the loop keeps, evaluated (default 0)
                "dim": POS_INT,  # generator width (reference: 64)
                "n_downsample": POS_INT,  # reference: 2
                "n_res": POS_INT,  # residual blocks in the encoder and the decoder (reference: 5)
                "style_dim": POS_INT,  # reference: 64
                "mlp_dim": POS_INT,  # reference: 256
                "n_masks": POS_INT,  # mask channels k (reference: 3; study B's description: 1)
                "norm": {"enum": ["adain", "in"]},  # decoder norm: adain (reference) | in (study B's proposal)
                "dis_dim": POS_INT,  # reference: 64
                "dis_layers": POS_INT,  # stride-2 convs per scale (reference: 4)
                "dis_scales": POS_INT,  # reference: 2
                "lr": POS_NUM,  # reference: 1e-4
                "betas": BETAS,
                "weight_decay": NONNEG_NUM,  # reference: 1e-4
                "lr_step": POS_INT,  # the lr is multiplied by lr_gamma every lr_step iterations (reference: 100000, 0.5)
                "lr_gamma": POS_NUM,
                "gan_w": NONNEG_NUM,  # reference anime: 26
                "council_w": NONNEG_NUM,  # reference anime: 6
                "council_start": NONNEG_INT,  # iteration the council loss starts at (reference anime: 1000)
                "council_dis_iters": POS_INT,  # other members each council discriminator sees per step (reference: 4)
                "style_alpha": NONNEG_NUM,  # the others' style codes are scaled by this (reference: 0.7)
                "loss_matching_history": NONNEG_INT,  # council loss x mean(GAN)/mean(council) over this many steps (reference: 100; 0 = off)
                "mask_zero_one_w": NONNEG_NUM,  # focus loss (reference anime: 0, 0, 0; glasses: 10, 57, 2.2)
                "mask_total_w": NONNEG_NUM,
                "mask_tv_w": NONNEG_NUM,
                "focus_start": NONNEG_INT,  # iteration the focus loss starts after (reference: 2000)
                "focus_epsilon": POS_NUM,  # reference: 0.01
                "paired_weight": NONNEG_NUM,  # L1 to each face's own body (not in the reference; needs paired: true)
            }
        ),
        sample=obj({}),
        check=_councilgan_check,
        needs_pairs=lambda net: net["paired_weight"] > 0,
    ),
    # Study B's remedy: a paired conditional GAN (pix2pixHD's global generator, multi-scale conditional
    # discriminators, feature matching), trained on face/full-body pairs.
    "pix2pixhd": Family(
        module="animegen.models.pix2pixhd",
        kind="translation",
        net=obj(
            {
                "ngf": POS_INT,  # reference: 64
                "ndf": POS_INT,  # reference: 64
                "n_downsample": POS_INT,  # reference (global generator): 4
                "n_blocks": POS_INT,  # reference: 9
                "n_layers_d": POS_INT,  # reference: 3
                "num_d": POS_INT,  # discriminator scales (reference: 2)
                "lambda_feat": NONNEG_NUM,  # feature matching (reference: 10)
                "l1_weight": NONNEG_NUM,  # pix2pix's L1 to the target (pix2pix: 100; pix2pixHD: none, 0)
                "lr": POS_NUM,
                "betas": BETAS,
                "lr_constant_steps": NONNEG_INT,  # reference: 100 epochs constant ...
                "lr_decay_steps": NONNEG_INT,  # ... then 100 decaying linearly to 0
            }
        ),
        sample=obj({}),
        check=_pix2pixhd_check,
        needs_pairs=lambda net: True,
    ),
}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r} (known: {', '.join(sorted(FAMILIES))})") from None


def names(kind: str) -> list[str]:
    """The families of one kind (``unconditional`` for ``models:``, ``translation`` for ``translators:``)."""
    return sorted(n for n, f in FAMILIES.items() if f.kind == kind)


def model_class(name: str):
    """The ``Model`` class of a family (imports its module, and torch, on first use)."""
    return importlib.import_module(family(name).module).Model


def module_path(name: str) -> str:
    """The family's source file relative to the repository root (a code dependency of its stages)."""
    return "src/" + family(name).module.replace(".", "/") + ".py"
