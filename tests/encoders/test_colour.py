import numpy as np
import pytest
from PIL import Image

from fashionlens.encoders import create
from fashionlens.encoders.colour import HistogramSpec, colour_histograms


def _garment(colour, canvas=(60, 80), box=(15, 20, 45, 70)) -> Image.Image:
    """A solid-colour 'garment' rectangle on the catalog's white background."""
    img = Image.new("RGB", canvas, (255, 255, 255))
    img.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), colour), box[:2])
    return img


def test_histogram_ignores_the_white_background():
    small = _garment((200, 30, 30))
    big = _garment((200, 30, 30), canvas=(60, 80), box=(5, 5, 55, 75))
    enc = create("colourhist-80.hsv")
    a, b = enc.encode_images([small, big])
    assert a @ b > 0.99  # same garment colour, more or less white around it (edges blend a little)
    spec = HistogramSpec()
    red_bin = (0 * spec.sat + 1) * spec.val + 2  # hue 0 (red), high saturation, high value
    assert a.argmax() == red_bin and a[red_bin] > 0.9


def test_close_colours_are_told_apart_and_greys_by_value():
    enc = create("colourhist-80.hsv")
    colours = ((20, 30, 110), (10, 10, 10), (200, 30, 30), (128, 128, 128))
    navy, black, red, grey = enc.encode_images([_garment(c, box=(5, 5, 55, 75)) for c in colours])
    # only the blended edge pixels (lighter versions of each colour) can share bins
    assert navy @ black < 0.05 and navy @ red < 0.05 and black @ grey < 0.4
    assert enc.dim == 80 and np.allclose(np.linalg.norm(navy), 1.0)


def test_white_garment_is_histogrammed_whole():
    x = np.ones((1, 10, 10, 3), dtype=np.float32)
    h = colour_histograms(x)
    assert h.sum() > 0 and h[0, -1] == pytest.approx(1.0)  # all mass in the brightest grey bin


def test_fused_encoder_caches_its_parts_and_matches_direct_encoding(tmp_path):
    from fashionlens.embed import embed_images

    paths = []
    for i, c in enumerate([(200, 30, 30), (20, 30, 110), (10, 10, 10)]):
        paths.append(str(tmp_path / f"{i}.jpg"))
        _garment(c).save(paths[-1])
    fused = create("efficientnet-lite0.colour")
    assert fused.dim == 1280 + 80
    cache = tmp_path / "cache"
    got = embed_images(fused, paths, cache, progress=False)
    np.testing.assert_allclose(got, fused.encode_images(paths), atol=1e-4)
    # the parts were cached under their own fingerprints: Lite0's vectors are reusable on their own
    lite = embed_images(create("efficientnet-lite0"), paths, cache, progress=False)
    hist = embed_images(create("colourhist-80.hsv"), paths, cache, progress=False)
    np.testing.assert_allclose(got, fused.combine([lite, hist]), atol=1e-6)
    assert {p.name.split("-")[0] for p in cache.iterdir()} == {"efficientnet", "colourhist"}


def test_hsv_is_bit_identical_to_matplotlib():
    from matplotlib.colors import rgb_to_hsv as reference

    from fashionlens.encoders.colour import rgb_to_hsv

    rng = np.random.default_rng(0)
    x = rng.random((4, 40, 40, 3), dtype=np.float32)
    x[0, :5] = x[0, :5, :, :1]  # greys (delta 0), ties between channels, black and white
    x[1, :3, :, 1] = x[1, :3, :, 0]
    x[2, :2] = 0.0
    x[3, :2] = 1.0
    x = np.round(x * 255) / np.float32(255)  # pixel values as the encoder sees them: ties are common
    np.testing.assert_array_equal(rgb_to_hsv(x), reference(x))
