"""Stacked hourglass, heatmap targets, consistent augmentation, sub-pixel decoding, training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.core.checkpoint import read_checkpoint
from simgan.core.refiner.discriminator import HAND, PatchDiscriminator
from simgan.core.refiner.net import Refiner
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams
from simgan.hand.estimator import (
    PoseEstimatorParams,
    build_hourglass,
    decode_heatmaps,
    heatmap_targets,
    heatmap_to_image,
    image_to_heatmap,
    predict_keypoints,
    random_affine,
    train_pose_estimator,
    warp,
)
from simgan.hand.hourglass import PAPER, StackedHourglass


@pytest.mark.parametrize(("stride", "size", "hm"), [(1, 32, 32), (2, 64, 32), (4, 64, 16),
                                                    (4, 50, 13)])
def test_shapes_one_heatmap_per_joint_per_stack(stride: int, size: int, hm: int) -> None:
    net = StackedHourglass(joints=14, stacks=2, width=8, depth=2, stem_stride=stride)
    out = net(torch.zeros(3, 1, size, size))
    assert len(out) == 2 and all(o.shape == (3, 14, hm, hm) for o in out)
    assert net.stride == stride


def test_paper_size_builds() -> None:
    net = StackedHourglass(**PAPER).eval()
    with torch.inference_mode():  # 96 px here to stay fast; 224 px crops give 56 px heatmaps
        out = net(torch.zeros(1, 1, 96, 96))
    assert [o.shape for o in out] == [(1, 14, 24, 24)] * 2
    assert sum(p.numel() for p in net.parameters()) > 3_000_000


def test_paper_hand_refiner_and_discriminator_layouts() -> None:
    """7x7 filters, 10 ResNet blocks; D: conv7x7 s4 96, conv5x5 s2 64, maxpool3x3 s2,
    conv3x3 s2 32, conv1x1 32, conv1x1 2, expressed through the params models."""
    d = PatchDiscriminator(**DiscriminatorParams(**HAND).model_dump())
    assert d(torch.zeros(2, 1, 224, 224)).shape == (2, 2, 7, 7)
    r = Refiner(**RefinerNetParams(width=8, blocks=10, kernel=7, noise_channels=0).model_dump())
    assert r(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (7, 7)
               for m in r.modules()) == 1 + 2 * 10


# --- targets and decoding --------------------------------------------------------------------


def test_targets_peak_at_the_joint_and_coordinates_round_trip() -> None:
    uv = torch.tensor([[[5.0, 7.0], [0.0, 15.0]]])
    t = heatmap_targets(uv, (16, 16), sigma=1.0)
    assert t.shape == (1, 2, 16, 16)
    assert t[0, 0, 7, 5] == 1.0 and t[0, 0, 7, 6] == pytest.approx(math.exp(-0.5))
    assert t[0, 1].argmax() == 15 * 16 + 0
    img = torch.tensor([[[1.5, 2.5]]])
    assert torch.allclose(image_to_heatmap(img, 4), torch.tensor([[[0.0, 0.25]]]))
    assert torch.allclose(heatmap_to_image(image_to_heatmap(img, 4), 4), img)


@pytest.mark.parametrize("method", ["quadratic", "soft_argmax"])
def test_sub_pixel_decoding_of_gaussian_blobs(method: str) -> None:
    g = torch.Generator().manual_seed(0)
    uv = 2 + 12 * torch.rand(4, 14, 2, generator=g)  # away from the border
    hm = heatmap_targets(uv, (16, 16), sigma=1.0)
    got = decode_heatmaps(hm, method)
    err = (got - uv).norm(dim=-1)
    if method == "quadratic":
        assert err.max() < 1e-3  # a parabola through log-Gaussian values is exact
    else:
        assert err.max() < 0.15  # window centred on the argmax: biased toward it
    argmax_only = torch.stack([hm.flatten(2).argmax(2) % 16, hm.flatten(2).argmax(2) // 16], -1)
    assert (got - uv).norm(dim=-1).mean() < 0.5 * (argmax_only - uv).norm(dim=-1).mean()


def test_decoding_at_the_border_and_of_flat_maps_stays_finite() -> None:
    hm = torch.zeros(1, 2, 8, 8)
    hm[0, 0, 0, 7] = 1.0
    got = decode_heatmaps(hm)
    assert got[0, 0].tolist() == [7.0, 0.0] and torch.isfinite(got).all()
    assert torch.isfinite(decode_heatmaps(-torch.ones(1, 1, 8, 8), "soft_argmax")).all()


# --- augmentation ----------------------------------------------------------------------------


def test_rotating_a_heatmap_blob_moves_it_where_the_keypoint_goes() -> None:
    """Draw a blob at a keypoint, warp image and keypoint with the same random map, decode the
    warped blob: it must come back at the warped keypoint."""
    g = torch.Generator().manual_seed(3)
    n, size = 16, 64
    kp = 20 + 24 * torch.rand(n, 1, 2, generator=g)
    blob = heatmap_targets(kp, (size, size), sigma=2.0)  # (n, 1, 64, 64) in [0, 1]
    images = blob * 2 - 1  # as a [-1, 1] image
    m = random_affine(n, (size, size), 20.0, 0.1, 3.0, g)
    angles = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    assert angles.abs().max() <= 20.0 + 1e-4 and angles.abs().max() > 10.0
    out, kp2 = warp(images, kp, m, "bilinear")
    got = decode_heatmaps((out + 1) / 2, "quadratic")
    assert (got - kp2).norm(dim=-1).max() < 0.15
    # the identity map changes nothing, even with nearest sampling
    same, kp3 = warp(images, kp, torch.eye(3).expand(n, 3, 3), "nearest")
    assert torch.equal(same, images) and torch.allclose(kp3, kp)


def test_warp_fills_with_background_and_keeps_codes_with_nearest() -> None:
    x = torch.full((1, 1, 8, 8), 0.5)
    m = torch.eye(3)[None].clone()
    m[0, 0, 2] = 4.0  # shift right by 4 px: the left half is empty
    out, kp = warp(x, torch.tensor([[[1.0, 2.0]]]), m, "nearest")
    assert (out[0, 0, :, :4] == -1).all() and (out[0, 0, :, 4:] == 0.5).all()
    assert kp.tolist() == [[[5.0, 2.0]]]


# --- training --------------------------------------------------------------------------------


def _blob_data(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with one bright disc per joint (2 joints): a task a tiny net learns quickly."""
    rng = np.random.default_rng(seed)
    kp = rng.uniform(6, size - 7, (n, 2, 2)).astype(np.float32)
    vv, uu = np.mgrid[:size, :size]
    img = np.zeros((n, size, size), np.uint8)
    for j, level in enumerate((255, 128)):
        d2 = (uu[None] - kp[:, j, 0, None, None]) ** 2 + (vv[None] - kp[:, j, 1, None, None]) ** 2
        img[d2 <= 4.0] = level
    return img, kp


def test_training_learns_blobs(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images, kp = _blob_data(384)
    p = PoseEstimatorParams(width=16, depth=2, stem_stride=2, epochs=3, batch_size=32, lr=1e-2,
                            rotation_deg=20.0, device="cpu", channels_last=True)
    metrics: list[tuple[dict[str, float], int]] = []
    state, hist = train_pose_estimator(images, kp, p, tmp_path / "a",
                                       lambda m, e: metrics.append((m, e)))
    assert len(hist) == 3 and [e for _, e in metrics] == [1, 2, 3]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    centre = float(np.linalg.norm(kp - 15.5, axis=-1).mean())  # always guessing the centre
    assert hist[-1]["val_mean_px"] < 0.75 * centre  # measured: 0.62
    assert hist[-1]["best_epoch"] == 3
    model = build_hourglass(p, joints=2)
    model.load_state_dict(state)
    pred = predict_keypoints(model, images[:8], device="cpu")
    assert pred.shape == (8, 2, 2) and pred.dtype == np.float32


def test_training_is_seeded_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images, kp = _blob_data(96)
    p = PoseEstimatorParams(width=8, depth=1, stem_stride=2, epochs=2, batch_size=32,
                            device="cpu")
    state, _ = train_pose_estimator(images, kp, p, tmp_path / "a")

    class Killed(Exception):
        pass

    def kill(_: dict[str, float], epoch: int) -> None:
        if epoch == 2:
            raise Killed  # before epoch 2's checkpoint: the resume starts after epoch 1

    with pytest.raises(Killed):
        train_pose_estimator(images, kp, p, tmp_path / "b", kill)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    state2, hist2 = train_pose_estimator(images, kp, p, tmp_path / "b")
    assert len(hist2) == 2 and all(torch.equal(state[k], state2[k]) for k in state)
    last_a, last_b = ((tmp_path / d / "last.pt").read_bytes() for d in "ab")
    assert last_a == last_b  # the file's bytes, not only its tensors
    other, _ = train_pose_estimator(images, kp, p.model_copy(update={"seed": 1}), tmp_path / "c")
    assert not all(torch.equal(state[k], other[k]) for k in state)


def test_training_rejects_bad_inputs(tmp_path: Path) -> None:
    images, kp = _blob_data(8)
    p = PoseEstimatorParams(width=8, depth=1, epochs=1, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        train_pose_estimator(images.astype(np.float32), kp, p, tmp_path)
    with pytest.raises(ValueError, match="keypoints"):
        train_pose_estimator(images, kp[:4], p, tmp_path)
    bad = kp.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_pose_estimator(images, bad, p, tmp_path)
