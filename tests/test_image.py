"""Images: the embedded models, pixel maps and overlays, explain_image, hostile files, the CLI."""

import io
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

import integrad  # noqa: E402

from integrad.image import BASELINES, explain_image, load_image  # noqa: E402
from integrad.models._imagenet import SAMPLES, imagenet_class_names, load_imagenet_model, load_sample  # noqa: E402
from integrad.models._mnist import load_mnist_digits, load_mnist_model  # noqa: E402
from integrad.viz import normalize, overlay, pixel_map, plot_baselines, plot_overlay  # noqa: E402
from integrad.viz._image import png_bytes  # noqa: E402
from integrad.viz._text import POSITIVE  # noqa: E402

DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def imagenet():
    return load_imagenet_model()


@pytest.fixture(scope="module")
def chelsea(imagenet):
    """The one full-size IG run of this file, at the default settings."""
    model, names = imagenet
    return explain_image(model, "chelsea", class_names=names)


def toy_model(channels=3, classes=4, seed=0):
    """A smooth seeded conv net in float64: IG on it is exact to quadrature precision."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net.double().eval()


def toy_image(seed=0, shape=(3, 8, 8)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------- the embedded models
def test_chelsea_has_a_cat_in_top3(chelsea, imagenet):
    _, names = imagenet
    top3 = [names.index(n) for n, _ in chelsea.top[:3]]
    assert any(i in DOMESTIC_CATS for i in top3), chelsea.top
    assert chelsea.label == "Egyptian Mau" and chelsea.target == 285
    assert 0.3 < chelsea.probability < 0.5  # 0.40 with the centred crop


def test_chelsea_completeness_gap_within_5_percent_at_default_settings(chelsea):
    assert chelsea.result.settings["n_steps"] == 50 and chelsea.result.settings["method"] == "gausslegendre"
    assert chelsea.f_x > chelsea.f_baseline + 5  # the black image is far from the cat
    assert chelsea.relative_delta <= 0.05, (chelsea.delta, chelsea.f_x, chelsea.f_baseline)


def test_signed_pixel_map_keeps_completeness(chelsea):
    m = chelsea.pixel_map()
    assert m.shape == (224, 224)
    assert m.sum() == pytest.approx(float(chelsea.result.total[0]), rel=1e-5)
    assert m.sum() == pytest.approx(chelsea.f_x - chelsea.f_baseline + chelsea.delta, rel=1e-4)


def test_chelsea_whole_frame_is_the_confident_prediction(imagenet):
    model, names = imagenet
    with torch.no_grad():
        p = model(load_sample("chelsea", crop=False)[None]).softmax(-1)[0]
    assert names[int(p.argmax())] == "Egyptian Mau" and p.max() > 0.7


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_are_rgb_in_unit_range(name):
    x = load_sample(name)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_imagenet_model_resizes_other_sizes_itself(imagenet):
    model, _ = imagenet
    with torch.no_grad():
        assert model(torch.full((2, 3, 97, 131), 0.5)).shape == (2, 1000)
    with pytest.raises(ValueError, match=r"x: expected RGB images of shape \(batch, 3, H, W\)"):
        model(torch.zeros(1, 1, 224, 224))


def test_imagenet_class_names_are_distinct():
    names = imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[285] == "Egyptian Mau" and {names[657], names[744]} == {"missile", "projectile"}


def test_mnist_model_accuracy_on_500_real_digits():
    model = load_mnist_model()
    x, y = load_mnist_digits(500, seed=0)
    assert x.shape == (500, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.98
    assert set(y.tolist()) == set(range(10))


def test_mnist_digits_reproducible_by_seed():
    a, ya = load_mnist_digits(20, seed=3)
    b, yb = load_mnist_digits(20, seed=3)
    c, _ = load_mnist_digits(20, seed=4)
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)


def test_mnist_digit_explanation_completeness():
    model = load_mnist_model()
    x, y = load_mnist_digits(1, seed=1)
    ex = explain_image(model, x[0])
    assert ex.target == int(y[0]) and ex.attributions.shape == (1, 28, 28)
    assert ex.relative_delta < 0.05


# ---------------------------------------------------------------------------- maps and overlays
def test_channel_aggregation_on_a_hand_made_2x2_image():
    attr = np.array([[[1.0, -2.0], [0.0, 3.0]],
                     [[2.0, 2.0], [0.0, -4.0]],
                     [[-3.0, 0.0], [0.0, 0.0]]])
    assert pixel_map(attr).tolist() == [[0.0, 0.0], [0.0, -1.0]]
    assert pixel_map(attr, "abs").tolist() == [[6.0, 4.0], [0.0, 7.0]]
    np.testing.assert_allclose(pixel_map(torch.tensor(attr)[None], "l2"), [[math.sqrt(14), math.sqrt(8)], [0, 5]])
    with pytest.raises(ValueError, match="reduce: expected one of sum, abs, l2; got 'max'"):
        pixel_map(attr, "max")


def test_percentile_clipping_saturates_only_the_top_percent():
    m = np.arange(100.0).reshape(10, 10)
    norm, scale = normalize(m, clip=99)
    assert scale == pytest.approx(np.percentile(np.arange(100.0), 99)) == pytest.approx(98.01)
    assert (norm == 1.0).sum() == 1 and norm[5, 0] == pytest.approx(50 / 98.01)
    norm, scale = normalize(m, clip=100)
    assert scale == 99.0 and norm.max() == 1.0


def test_percentile_clipping_keeps_one_extreme_pixel_from_washing_out_the_rest():
    m = np.ones((100, 100))
    m[0, 0] = 1e6
    assert normalize(m, clip=99)[0].min() == 1.0
    assert normalize(m, clip=100)[0][1, 1] == pytest.approx(1e-6)


def test_sign_selection():
    m = np.array([[2.0, -1.0], [0.0, -4.0]])
    assert normalize(m, sign="both", clip=100)[0].tolist() == [[0.5, -0.25], [0.0, -1.0]]
    assert normalize(m, sign="positive", clip=100)[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert normalize(m, sign="negative", clip=100)[0].tolist() == [[0.0, 0.25], [0.0, 1.0]]
    assert normalize(np.zeros((2, 2)))[1] == 0.0
    with pytest.raises(ValueError, match="sign: expected one of both, positive, negative"):
        normalize(m, sign="up")


def test_overlay_shape_dtype_and_colours():
    img = toy_image(shape=(3, 5, 7))
    out = overlay(img, np.zeros((5, 7)))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    grey = np.round((0.25 + 0.5 * (img.permute(1, 2, 0).numpy() @ [0.299, 0.587, 0.114])) * 255)
    assert (out[..., 0] == grey).all() and (out[..., 1] == grey).all()  # no attribution: the photo in grey
    full = overlay(img, np.ones((5, 7)), alpha=1.0)
    assert (full == np.array(POSITIVE, dtype=np.uint8)).all()
    assert overlay(np.zeros((5, 7, 3), np.uint8), np.ones((5, 7))).shape == (5, 7, 3)
    with pytest.raises(ValueError, match=r"pixels: map of shape \(2, 2\) does not match the image's \(5, 7\)"):
        overlay(img, np.ones((2, 2)))


def test_png_bytes_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    assert (np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))) == rgb).all()


def test_figures_save_as_png(tmp_path):
    img = toy_image(shape=(3, 16, 16))
    maps = {"black": np.random.default_rng(0).normal(size=(16, 16)), "blur": np.zeros((16, 16))}
    plot_overlay(img, maps["black"], title="t").savefig(tmp_path / "a.png")
    plot_baselines(img, maps, sign="positive").savefig(tmp_path / "b.png")
    assert Image.open(tmp_path / "a.png").size[0] > 100 and Image.open(tmp_path / "b.png").size[0] > 100


def test_importing_integrad_and_its_image_modules_imports_no_drawing_library():
    code = ("import sys, integrad, integrad.viz, integrad.viz._image, integrad.image, integrad.baselines; "
            "bad = {'matplotlib', 'PIL', 'skimage', 'efficientnet_lite_pytorch', 'mlxtend'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- explain_image
@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_name_keeps_completeness_on_a_smooth_model(baseline):
    ex = explain_image(toy_model(), toy_image(), baseline=baseline, n_steps=32)
    assert ex.attributions.dtype == torch.float64
    assert abs(ex.delta) < 1e-9 * max(1.0, abs(ex.f_x - ex.f_baseline))
    assert ex.baseline.startswith(baseline)


@pytest.mark.parametrize("baseline", ["uniform", "gaussian"])
def test_random_image_baselines_follow_the_seed(baseline):
    run = lambda seed: explain_image(toy_model(), toy_image(), baseline=baseline, n_steps=4, seed=seed)  # noqa: E731
    assert torch.equal(run(1).attributions, run(1).attributions)
    assert not torch.equal(run(1).attributions, run(2).attributions)


def test_target_by_index_and_by_name_agree():
    names = ["cat", "dog", "fish", "bird"]
    a = explain_image(toy_model(), toy_image(), class_names=names, target=2, n_steps=4)
    b = explain_image(toy_model(), toy_image(), class_names=names, target="FISH", n_steps=4)
    assert a.target == b.target == 2 and b.target_name == "fish"
    assert torch.equal(a.attributions, b.attributions)
    with pytest.raises(ValueError, match="target: unknown class name 'dgo'; did you mean 'dog'"):
        explain_image(toy_model(), toy_image(), class_names=names, target="dgo")
    with pytest.raises(ValueError, match=r"target: class index 9 is out of range for 4 classes \(valid: 0\.\.3\)"):
        explain_image(toy_model(), toy_image(), target=9)


def test_explanation_renders_html_png_and_json(tmp_path):
    names = ["<b>cat</b>", "dog", "fish", "bird"]
    ex = explain_image(toy_model(), toy_image(shape=(3, 12, 12)), class_names=names, target=0, n_steps=4)
    page = ex._repr_html_()
    assert "data:image/png;base64," in page and "&lt;b&gt;cat&lt;/b&gt;" in page and "<b>cat</b>" not in page
    ex.to_png(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").format == "PNG"
    d = json.loads(json.dumps(ex.to_dict()))
    assert d["target"]["label"] == "<b>cat</b>" and len(d["top"]) == 4 and "integrad_version" in d


# ---------------------------------------------------------------------------- hostile input
def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="image: .*nope.png' is neither a sample name nor an existing file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_image(tmp_path)


def test_non_image_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match="image: .*notes.png' is not an image file Pillow can read"):
        explain_image(toy_model(), path)


def test_alpha_channel_is_flattened_onto_white_with_a_warning(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha channel; transparent parts were flattened onto white"):
        x, _ = load_image(tmp_path / "a.png", size=4)
    assert torch.allclose(x[:, 3], torch.ones(3, 4)) and x[0, 0, 0] == pytest.approx(200 / 255)


def test_greyscale_file_is_repeated_to_rgb_with_a_warning(tmp_path):
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16, "L").save(tmp_path / "g.png")
    with pytest.warns(UserWarning, match="greyscale; its channel was repeated to RGB"):
        x, source = load_image(tmp_path / "g.png", size=4)
    assert x.shape == (3, 4, 4) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert source.endswith("g.png")


def test_rgb_file_loads_quietly_cropped_and_resized(tmp_path):
    Image.fromarray(np.full((30, 50, 3), 128, np.uint8)).save(tmp_path / "c.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _ = load_image(tmp_path / "c.png", size=10)
    assert x.shape == (3, 10, 10) and torch.allclose(x, torch.full_like(x, 128 / 255))


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"baseline": "white"}, ValueError, "baseline: expected one of black, grey, blur, uniform, gaussian or a tensor; "
                                        "got 'white'"),
    ({"baseline": "black", "sigma": 2.0}, ValueError, "sigma: only the blur and gaussian baselines take sigma"),
    ({"baseline": torch.zeros(5, 5)}, ValueError, r"baseline: shape \(5, 5\) does not broadcast"),
    ({"class_names": ["a", "b"]}, ValueError, "class_names: expected 4 strings, one per model output; got 2"),
    ({"top_k": 0}, ValueError, "top_k: expected an int >= 1; got 0"),
])
def test_bad_options_name_the_argument(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        explain_image(toy_model(), toy_image(), n_steps=2, **kwargs)


@pytest.mark.parametrize("image, exc, pattern", [
    (torch.full((3, 4, 4), 2.0), ValueError, r"image: expected pixels in \[0, 1\]; got values in 2\.\.2"),
    (torch.zeros(4, 4), ValueError, r"image: expected a tensor of shape \(C, H, W\) or \(1, C, H, W\); got \(4, 4\)"),
    (torch.zeros(3, 4, 4, dtype=torch.int32), TypeError, "image: expected float pixels in \\[0, 1\\] or uint8"),
    (42, TypeError, "image: expected a sample name, a file path or a tensor"),
])
def test_bad_image_tensors_name_the_argument(image, exc, pattern):
    with pytest.raises(exc, match=pattern):
        load_image(image)


# ---------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def cli():
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from integrad.cli.image import image

    app = typer.Typer()
    app.command()(image)
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def test_cli_explains_a_sample_and_writes_png_and_json(cli, tmp_path):
    res = cli("chelsea", "--target", "tabby cat", "--baseline", "blur", "--n-steps", 2,
              "--out", tmp_path / "o.png", "--json", tmp_path / "o.json")
    assert res.exit_code == 0, res.output
    assert "Egyptian Mau" in res.output and "tabby cat (index 281)" in res.output
    assert "completeness gap" in res.output
    assert Image.open(tmp_path / "o.png").format == "PNG"
    d = json.loads((tmp_path / "o.json").read_text())
    assert d["source"] == "chelsea" and d["target"]["index"] == 281 and d["baseline"].startswith("blur")


@pytest.mark.parametrize("args, message", [
    (["missing.jpg"], "error: image: 'missing.jpg' is neither a sample name nor an existing file"),
    (["chelsea", "--baseline", "white"], "error: baseline: expected one of black, grey, blur"),
    (["chelsea", "--target", "catt", "--n-steps", "2"], "error: target: unknown class name 'catt'"),
])
def test_cli_errors_exit_2_without_traceback(cli, args, message):
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_cli_default_steps_match_the_library_default():
    import inspect

    from integrad.cli.image import image
    from integrad.image import N_STEPS

    from integrad.image import explain_image
    from integrad.methods.ig import integration

    # the CLI leaves the choice to the library, whose default is N_STEPS Gauss-Legendre nodes
    assert inspect.signature(image).parameters["n_steps"].default.default is None
    assert inspect.signature(explain_image).parameters["n_steps"].default is None
    assert integration(None, None, None, 4097, N_STEPS) == {"n_steps": N_STEPS}


def test_cli_reports_a_non_image_file(cli, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\x00\x01 definitely not a jpeg")
    res = cli(bad)
    assert res.exit_code == 2 and "is not an image file Pillow can read" in " ".join(res.output.split())


def test_smooth_equals_smoothgrad_of_ig_and_zero_noise_equals_ig():
    model, img = toy_model(), toy_image()
    plain = explain_image(model, img, n_steps=16)
    still = explain_image(model, img, n_steps=16, smooth=3, noise=0.0)
    assert torch.allclose(still.attributions, plain.attributions, atol=1e-12)
    noisy = explain_image(model, img, n_steps=16, smooth=4, noise=0.1, seed=5)
    direct = integrad.smoothgrad(model, img[None], n_samples=4, noise=0.1, seed=5, n_steps=16,
                                 target=noisy.target)
    assert torch.allclose(noisy.attributions, direct.attributions[0], atol=1e-12)
    assert noisy.result.stderr is not None and noisy.result.settings["smoothgrad"]["n_samples"] == 4
    assert int(noisy.result.n_evals.sum()) == 4 * 16


def test_16_bit_greyscale_png_is_read_at_its_full_range(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode I;16
    with pytest.warns(UserWarning, match="greyscale"):
        x, _ = load_image(path, size=64)
    # a ramp from black to white, not clipped to white above 255/65535
    assert x.shape == (3, 64, 64)
    assert float(x.min()) < 0.02 and float(x.max()) > 0.98
    assert 0.4 < float(x.mean()) < 0.6


def test_huge_image_is_reduced_before_it_is_converted(tmp_path):
    import tracemalloc

    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 3000), (200, 10, 10)).save(big)
    tracemalloc.start()
    x, _ = load_image(big, size=64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert x.shape == (3, 64, 64) and abs(float(x[0].mean()) - 200 / 255) < 1e-2
    # numpy's float64 RGBA copy of the full image alone would be 288 MB
    assert peak < 50 * 2**20


# ---------------------------------------------------------------------------- the views a reader picks
@pytest.mark.parametrize("reduce, sign", [("sum", "both"), ("sum", "positive"), ("abs", "both"), ("l2", "both")])
def test_every_view_writes_a_png_and_an_overlay_in_its_own_colours(tmp_path, reduce, sign):
    from integrad.viz._image import MAGNITUDE, NEGATIVE

    ex = explain_image(toy_model(), toy_image(shape=(3, 12, 12)), class_names=["cat", "dog", "fish", "bird"], n_steps=4)
    ex.to_png(tmp_path / "v.png", reduce=reduce, sign=sign)
    assert Image.open(tmp_path / "v.png").format == "PNG"
    m, _ = normalize(ex.pixel_map(reduce), sign=sign, clip=50)
    at_full = {tuple(c) for c in ex.overlay(reduce=reduce, sign=sign, clip=50, alpha=1.0)[np.abs(m) == 1.0]}
    hues = {("sum", "both"): {POSITIVE, NEGATIVE}, ("sum", "positive"): {POSITIVE}}.get((reduce, sign), {MAGNITUDE})
    assert at_full and at_full <= hues


def test_magnitude_overlay_of_a_signed_map_is_refused_with_the_fix():
    ex = explain_image(toy_model(), toy_image(), n_steps=4)
    with pytest.raises(ValueError, match=r"sign: a magnitude map \(reduce='abs'\) has no negative part"):
        ex.overlay(reduce="abs", sign="negative")
