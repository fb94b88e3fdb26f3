"""Lighting augmentations and lighting-invariant inputs: each a pure function, each checked
against what it claims (colorimetry references, invariances, what it must leave alone)."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.encoders import lighting as L


def _image(seed: int = 0, size: int = 24) -> np.ndarray:
    """A textured colour image in [0.05, 0.6] sRGB: no pixel clips under the changes below."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.3 + 0.2 * xx, 0.2 + 0.3 * yy, 0.4 - 0.2 * xx * yy], -1)
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0.05, 0.6)


def _rg_chroma(img: np.ndarray) -> np.ndarray:
    lin = L.srgb_to_linear(img)
    return lin / lin.sum(-1, keepdims=True)


def test_planckian_locus_matches_cie_illuminant_a_and_6500k():
    # CIE illuminant A is a 2856 K black body: x, y = 0.44757, 0.40745
    assert L.planckian_xy(2856) == pytest.approx((0.44757, 0.40745), abs=1e-3)
    assert L.planckian_xy(6500) == pytest.approx((0.3135, 0.3237), abs=1e-3)
    with pytest.raises(ValueError, match="outside 1667-25000 K"):
        L.planckian_xy(1000)


def test_colour_temperature_shifts_chromaticity_the_way_the_light_does():
    img = _image()
    assert L.colour_temperature(img, L.REFERENCE_K) == pytest.approx(img, abs=1e-9)
    before = _rg_chroma(img)
    warm, cool = _rg_chroma(L.colour_temperature(img, 3000)), _rg_chroma(L.colour_temperature(img, 12000))
    assert (warm[..., 0] > before[..., 0]).all() and (warm[..., 2] < before[..., 2]).all()  # redder
    assert (cool[..., 0] < before[..., 0]).all() and (cool[..., 2] > before[..., 2]).all()  # bluer
    # von Kries: one gain per channel, so every pixel's R/G (in linear light) moves by the same factor
    lin0, lin1 = L.srgb_to_linear(img), L.srgb_to_linear(L.colour_temperature(img, 3000))
    ratio = (lin1[..., 0] / lin1[..., 1]) / (lin0[..., 0] / lin0[..., 1])
    assert ratio.std() < 1e-9 and ratio.mean() > 1.2
    grey = np.full((2, 2, 3), 0.4)  # a grey keeps its luminance
    lum = lambda x: L.srgb_to_linear(x) @ np.array([0.2126, 0.7152, 0.0722])  # noqa: E731
    assert lum(L.colour_temperature(grey, 3000)) == pytest.approx(lum(grey))


def test_highlight_gain_changes_only_the_highlights():
    img = _image(1)
    lum = L.srgb_to_linear(img) @ np.array([0.2126, 0.7152, 0.0722])
    low = lum <= np.quantile(lum, 0.9)
    for gain in (0.5, 2.0):
        out = L.highlight_gain(img, gain)
        assert out[low] == pytest.approx(img[low], abs=1e-9)
        out_lum = L.srgb_to_linear(out) @ np.array([0.2126, 0.7152, 0.0722])
        assert (out_lum.max() > lum.max()) == (gain > 1)
    assert L.highlight_gain(img, 1.0) == pytest.approx(img, abs=1e-9)


def test_dihedral_gives_eight_distinct_views_and_zero_is_identity():
    img = _image(2)
    views = [L.dihedral(img, k) for k in range(8)]
    assert np.array_equal(views[0], img)
    assert len({v.tobytes() for v in views}) == 8
    assert np.array_equal(np.rot90(views[1], -1), img) and np.array_equal(views[4][:, ::-1], img)


def test_chromaticity_ignores_exposure_and_shading():
    img = _image(3)
    c = L.chromaticity(img)
    assert L.chromaticity(L.exposure(img, -1.0)) == pytest.approx(c, abs=1e-9)
    shade = np.linspace(0.3, 1.0, img.shape[1])[None, :, None]  # a shadow across the image
    shaded = L.linear_to_srgb(L.srgb_to_linear(img) * shade)
    assert L.chromaticity(shaded) == pytest.approx(c, abs=1e-9)
    # ... but not colour: a warmer light changes it
    assert np.abs(L.chromaticity(L.colour_temperature(img, 3000)) - c).max() > 0.02


def test_local_contrast_ignores_exposure_and_slowly_varying_light():
    img = _image(4, size=48)
    lc = L.local_contrast(img, sigma=0.05)
    assert L.local_contrast(L.exposure(img, -1.0), sigma=0.05) == pytest.approx(lc, abs=1e-9)
    # light falling off smoothly across the image: the raw pixels change a lot, local contrast little
    ramp = np.exp(np.linspace(0.0, -0.7, img.shape[1]))[None, :, None]
    lit = L.linear_to_srgb(L.srgb_to_linear(img) * ramp)
    raw_change = np.abs(lit - img).mean()
    lc_change = np.abs(L.local_contrast(lit, sigma=0.05) - lc).mean()
    assert lc_change < 0.1 * raw_change, (lc_change, raw_change)


def test_relight_is_seeded_and_changes_colour_and_light():
    img = _image(5)
    a = L.relight(img, np.random.default_rng(7))
    b = L.relight(img, np.random.default_rng(7))
    assert np.array_equal(a, b) and a.shape == img.shape and a.min() >= 0 and a.max() <= 1
    outs = [L.relight(img, np.random.default_rng(s)) for s in range(20)]
    means = np.array([_rg_chroma(o).reshape(-1, 3).mean(0) for o in outs])
    assert means[:, 0].std() > 0.005  # the illuminant's colour varies from draw to draw
    # strength 0: the light is left alone, only the flip / quarter turn remains
    still = L.relight(img, np.random.default_rng(7), strength=0.0)
    assert any(np.allclose(still, L.dihedral(img, k), atol=1e-9) for k in range(8))


def test_grey_world_ignores_colour_temperature_and_exposure_but_keeps_the_pattern():
    img = _image(6)
    g = L.grey_world(img)
    for changed in (L.colour_temperature(img, 3000), L.colour_temperature(img, 12000), L.exposure(img, -1.0)):
        assert np.abs(changed - img).max() > 0.02  # the light really changed the pixels
        assert L.grey_world(changed) == pytest.approx(g, abs=1e-9)
    # the channels' means come out as the same grey, the pattern inside the image stays
    assert L.srgb_to_linear(g).mean((0, 1)) == pytest.approx([0.214] * 3, abs=1e-6)
    assert np.abs(L.grey_world(_image(7)) - g).max() > 0.05
    # a highlight change is not a per-channel gain: grey world does not undo it
    assert np.abs(L.grey_world(L.highlight_gain(img, 3.0, quantile=0.8)) - g).max() > 0.01


def test_colour_jitter_moves_colour_tone_and_local_light_but_keeps_geometry():
    img = _image(2, 32)
    img[5, 7] = 0.95  # one bright pixel: where it is must not move (no flips / turns)
    assert L.colour_jitter(img, np.random.default_rng(0), 0.0) == pytest.approx(img, abs=1e-9)  # s = 0: unchanged
    a, b = (L.colour_jitter(img, np.random.default_rng(3), 1.0) for _ in range(2))
    assert a == pytest.approx(b) and a.shape == img.shape and a.min() >= 0.0 and a.max() <= 1.0  # seeded, in range
    for seed in range(5):
        out = L.colour_jitter(img, np.random.default_rng(seed), 1.0)
        assert np.abs(out - img).mean() > 0.01
        lum = L.srgb_to_linear(out) @ np.array([0.2126, 0.7152, 0.0722])
        assert np.unravel_index(lum.argmax(), lum.shape) == (5, 7)
        # not a per-channel gain (what grey world cancels, the proxy's colour temperature and exposure):
        # the light spot and the tone curve change the image even after grey world
        warm = L.grey_world(L.colour_temperature(img, 3000))
        assert np.abs(L.grey_world(out) - L.grey_world(img)).mean() > 5 * np.abs(warm - L.grey_world(img)).mean()
    # the light spot brightens or darkens one region more than the rest: the change varies across the frame
    ratio = L.srgb_to_linear(L.colour_jitter(img, np.random.default_rng(1), 2.0)).sum(-1) / L.srgb_to_linear(img).sum(-1)
    assert ratio.max() / ratio.min() > 1.2
