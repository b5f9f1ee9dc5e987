"""Study A's metric suite in one call: FID, KID, MAE, NWI and the memorisation rate of a set of images
against a reference set, with one :class:`MetricSettings` shared by the stages that score (``evaluate``
scores a model's samples against its dataset, ``compare`` one dataset against another; ``track`` needs
FID alone, :func:`fid_against`).

The reference side is given as its images (for MAE) and its precomputed Inception statistics (any
object with ``features`` and ``frechet``, a :class:`~animegen.metrics.fid.FrechetReference`, as
:class:`animegen.artifacts.reference.Reference` holds them), so neither the reference network pass nor
the reference side of the Frechet distance is ever repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animegen.metrics.extractor import Extractor
from animegen.metrics.kid import kernel_inception_distance
from animegen.metrics.mae import MAEResult, nearest_train_mae, nwi


@dataclass(frozen=True)
class MetricSettings:
    """``params.yaml``'s ``metrics:`` section plus the feature extractor's batch size (``inception:``)."""

    kid_subsets: int
    kid_subset_size: int
    memorisation_threshold: float
    seed: int

    @classmethod
    def from_params(cls, metrics: dict) -> "MetricSettings":
        return cls(metrics["kid_subsets"], metrics["kid_subset_size"], metrics["memorisation_threshold"], metrics["seed"])


def fid_against(images: np.ndarray, reference, extractor: Extractor) -> float:
    """FID of uint8 ``images`` (N, H, W, 3) against the reference statistics."""
    return reference.frechet.distance_to_features(extractor.features(images))


def fid_and_kid(candidate: np.ndarray, reference, extractor: Extractor, settings: MetricSettings,
                features: np.ndarray | None = None):  # fmt: skip
    """(FID, :class:`~animegen.metrics.kid.KIDResult`) of uint8 ``candidate`` against the reference statistics:
    the distribution part of :func:`score`, and all of a translator's evaluation but its classifier.
    ``features``: ``candidate``'s Inception features when a reference stage computed them already with
    ``extractor``'s weights (one row per image, same order); None computes them here."""
    feats = extractor.features(candidate) if features is None else features
    if len(feats) != len(candidate):
        raise ValueError(f"{len(feats)} feature rows for {len(candidate)} candidate images")
    fid = reference.frechet.distance_to_features(feats)
    kid = kernel_inception_distance(reference.features, feats, settings.kid_subsets, settings.kid_subset_size, settings.seed)
    return fid, kid


def score(candidate: np.ndarray, ref_images: np.ndarray, reference, extractor: Extractor,
          settings: MetricSettings, candidate_features: np.ndarray | None = None) -> tuple[dict, MAEResult]:  # fmt: skip
    """FID, KID, MAE, NWI and the memorisation rate of ``candidate`` (uint8 N x H x W x 3) against the
    reference set; returns the metrics (plain values) and the per-image nearest-neighbour result.
    ``candidate_features`` as :func:`fid_and_kid`'s ``features``."""
    s = settings
    fid, kid = fid_and_kid(candidate, reference, extractor, s, candidate_features)
    mae = nearest_train_mae(candidate, ref_images, threshold=s.memorisation_threshold, device=extractor.device)
    metrics = {
        "fid": fid, "kid": kid.mean, "kid_std": kid.std, "kid_subset_size": kid.subset_size,
        "kid_subsets": kid.num_subsets, "mae": mae.mae, "nwi": nwi(mae.mae, fid),
        "memorisation_rate": mae.memorisation_rate, "memorisation_threshold": s.memorisation_threshold,
        "mae_method": mae.method, "n_candidate": int(len(candidate)), "n_reference": int(len(ref_images)),
    }  # fmt: skip
    return metrics, mae
