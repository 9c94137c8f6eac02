"""The relighting operations on synthetic inputs with known answers (the lab's relighting stages 1-3.5)."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from genfab.api.relighting import DegradationConfig, RelightingConfig
from genfab.api.relighting_params import LightingParams
from genfab.stages.common.imaging import decode_png, encode_png
from genfab.stages.relighting import albedo, blur, degradation, images, matte, shading
from genfab.stages.relighting.recombine_stage import composite, compute_composite
from genfab.stages.runtime import SampleError
from tests.helpers import png_header

DEGRADATION = {
    "weights": {"softShading": 0.8, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.2},
    "softShading": {"ambient": {"min": 0.6, "max": 0.85}, "shadowPatterns": True},
    "hardShadow": {"patterns": ["perlin", "geometric", "blob"], "strength": {"min": 0.3, "max": 0.7}},
    "specular": {"shininess": {"min": 8.0, "max": 64.0}, "strength": {"min": 0.1, "max": 0.4}},
}


def sphere(size: int = 129) -> tuple[np.ndarray, np.ndarray]:
    """Analytic unit-sphere normals filling the frame, and its disc mask."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    nx, ny = (x - c) / c, (y - c) / c
    inside = nx**2 + ny**2 < 1.0
    nz = np.sqrt(np.clip(1.0 - nx**2 - ny**2, 0.0, 1.0))
    normals = np.dstack([nx, ny, nz]) * inside[..., None]
    normals[~inside] = (0, 0, 1)
    return normals.astype(np.float32), inside


def test_lambertian_shading_of_a_sphere_matches_the_formula() -> None:
    normals, inside = sphere()
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    ambient = 0.7
    got = shading.lambert(normals, light.tolist(), ambient)
    want = ambient + (1 - ambient) * np.maximum(0.0, (normals * light).sum(-1))
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-6)
    # the brightest point faces the light, and the shading never drops below the ambient term
    y, x = np.unravel_index(np.argmax(np.where(inside, got, 0)), got.shape)
    np.testing.assert_allclose(normals[y, x], light, atol=0.03)
    assert got.min() >= ambient - 1e-6


@pytest.mark.parametrize("shape", [(37, 53), (256, 192)])
def test_normals_from_a_height_field_are_the_unit_gradient_normals_exactly(shape: tuple[int, int]) -> None:
    height = cv2.GaussianBlur((np.random.default_rng(5).random(shape) * 40).astype(np.float32), (0, 0), 2)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    v = np.dstack([-gx, -gy, np.ones_like(height)]).astype(np.float32)
    want = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)
    got = shading.normals_from_height(height)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_classical_normals_of_a_disc_are_the_sphere() -> None:
    normals, inside = sphere(257)
    est = shading.normals_from_mask(inside)
    core = cv2.erode(inside.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0  # edges are steep
    angle = np.degrees(np.arccos(np.clip((est * normals).sum(-1), -1, 1)))
    assert np.median(angle[core]) < 6.0
    assert (est[~inside] == (0, 0, 1)).all()


def test_phong_highlight_peaks_at_the_mirror_direction() -> None:
    normals, inside = sphere()
    light = [0.0, 0.0, 1.0]  # light at the viewer: the highlight sits where N faces the viewer
    spec = shading.phong(normals, light, 32.0)
    c = normals.shape[0] // 2
    assert spec[c, c] == pytest.approx(1.0, abs=1e-5)
    assert spec[inside].min() >= 0.0 and spec.max() <= 1.0


def relit_person(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(image, binary mask, stage 1's parts, a degraded foreground) of a random 64x80 picture."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    binary = np.zeros((64, 80), bool)
    binary[10:50, 20:60] = True
    degraded = (rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) * binary[..., None]).astype(np.uint8)
    return image, binary, matte.split(image, binary), degraded


def test_composite_keeps_pixels_outside_the_mask_bit_identical() -> None:
    image, binary, parts, degraded = relit_person(1)
    out = composite(degraded, matte.original(parts["foreground"], parts["background"], binary),
                    matte.alpha_of(parts["foreground"]))
    outside = parts["mask"] == 0
    assert np.array_equal(out[outside], image[outside])
    core = matte.alpha_of(parts["foreground"]) == 1.0
    assert core.any() and np.array_equal(out[core], degraded[core])


def test_the_default_composite_is_the_seeds_binary_mask_and_soft_is_an_option() -> None:
    image, binary, parts, degraded = relit_person(3)
    job = {"id": "a", "mask": parts["mask"], "foreground": parts["foreground"], "background": parts["background"],
           "degraded": degraded}
    assert RelightingConfig.model_fields["composite"].default == "binary"
    binary_out = compute_composite({**job, "composite": "binary"})
    out = decode_png(binary_out["files"]["a_composite.png"], bgr=True)
    assert np.array_equal(out[binary], degraded[binary]) and np.array_equal(out[~binary], image[~binary])
    assert binary_out["params"]["composite"] == "binary"
    soft = decode_png(compute_composite({**job, "composite": "soft"})["files"]["a_composite.png"], bgr=True)
    alpha = matte.alpha_of(parts["foreground"])
    edge = (alpha > 0) & (alpha < 1)
    assert edge.any() and not np.array_equal(soft[edge], out[edge])  # the feathered outline blends...
    want = np.clip(degraded * alpha[..., None] + image * (1 - alpha[..., None]) + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(soft[binary], want[binary])  # ...with the input picture, not the black plate
    assert np.array_equal(soft[~binary], image[~binary])


def test_split_writes_the_seed_files_consistently() -> None:
    image = np.random.default_rng(2).integers(1, 256, (48, 48, 3), dtype=np.uint8)
    binary = np.zeros((48, 48), bool)
    binary[8:40, 12:36] = True
    parts = matte.split(image, binary)
    assert set(np.unique(parts["mask"])) == {0, 255}  # the seed's binary mask
    alpha = parts["foreground"][..., 3]
    assert (alpha[~binary] == 0).all() and (alpha[binary] > 0).all() and alpha.max() == 255
    assert np.array_equal(parts["background"][~binary], image[~binary])
    assert (parts["background"][binary] == 0).all()  # the plate has no person pixel
    assert np.array_equal(parts["foreground"][..., :3][binary], image[binary])


@pytest.mark.parametrize("shape", [(48, 48), (37, 91), (300, 200)])
def test_split_is_the_plain_selection_pixel_for_pixel(shape: tuple[int, int]) -> None:
    """OpenCV's masked copies give what NumPy's selection of the same pixels gives."""
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    binary = rng.random(shape) > 0.4
    alpha = np.clip(matte.soft_alpha(binary) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    want = {"foreground": np.dstack([np.where(binary[..., None], image, 0), alpha]).astype(np.uint8),
            "background": np.where(binary[..., None], 0, image).astype(np.uint8),
            "mask": np.where(binary, 255, 0).astype(np.uint8)}
    parts = matte.split(image, binary)
    assert {k: (v.dtype, v.shape) for k, v in parts.items()} == {k: (v.dtype, v.shape) for k, v in want.items()}
    assert all(np.array_equal(parts[k], want[k]) for k in want)


def test_png_encoding_is_lossless_for_every_layout() -> None:
    rng = np.random.default_rng(3)
    for pixels in (rng.integers(0, 256, (33, 47, 3), dtype=np.uint8), rng.integers(0, 256, (33, 47, 4), dtype=np.uint8),
                   rng.integers(0, 256, (33, 47), dtype=np.uint8), rng.integers(0, 65536, (33, 47), dtype=np.uint16)):
        for compression in (1, 3):
            assert np.array_equal(decode_png(encode_png(pixels, bgr=True, compression=compression), bgr=True), pixels)


def test_clean_mask_fills_holes_and_drops_specks() -> None:
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True
    m[25:30, 25:30] = False  # hole
    m[2, 2] = True  # speck
    cleaned = matte.clean_mask(m)
    assert cleaned.mask[27, 27] and not cleaned.mask[2, 2] and (cleaned.filled, cleaned.removed) == (25, 1)
    kept = matte.clean_mask(m, fill_enclosed=False, min_share=0.0)
    assert np.array_equal(kept.mask, m) and (kept.filled, kept.removed) == (0, 0)


@pytest.mark.parametrize("sigma", [15.0, 80.0, 250.0])
def test_fast_blur_is_within_tolerance_of_the_exact_blur(sigma: float) -> None:
    img = cv2.imread("examples/data/portraits/astronaut.png")
    img = np.log(cv2.resize(img, (600, 520), interpolation=cv2.INTER_CUBIC).astype(np.float32) + 1.0)
    exact, fast = blur.exact_blur(img, sigma), blur.fast_blur(img, sigma)
    err = np.abs(exact - fast) / float(img.max() - img.min())
    assert err.max() < 0.03 and err.mean() < 0.006, (err.max(), err.mean())


def test_retinex_output_range_and_foreground_only() -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0.1, 0.6, (240, 192, 3)).astype(np.float32)  # colours, under a lighting gradient
    image *= np.linspace(0.2, 1.0, 192, dtype=np.float32)[None, :, None]
    mask = np.zeros((240, 192), bool)
    mask[30:210, 24:168] = True
    out = albedo.multiscale_retinex(image, mask, [15, 80, 250])
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0 and (out[~mask] == 0).all()
    # the lighting gradient is reduced: the two halves of the person come out closer (the 250 px
    # scale sees the whole 144 px person as one illuminant, so a third of the log-gradient stays)
    left, right = out[30:210, 24:96].mean(), out[30:210, 96:168].mean()
    src_ratio = image[30:210, 24:96].mean() / image[30:210, 96:168].mean()
    assert abs(left / right - 1) < 0.8 * abs(src_ratio - 1)
    # and the colour stays: each pixel's CIELAB hue is the input's, a dark pixel's chroma too, and the
    # lightness moves within the bounded lift (no pixel pushed to black, none lifted past 2x + 8)
    before, after = (cv2.cvtColor(a, cv2.COLOR_BGR2Lab) for a in (image, out))
    chroma_in, chroma_out = np.hypot(before[..., 1], before[..., 2]), np.hypot(after[..., 1], after[..., 2])
    coloured = mask & (chroma_in > 5) & (chroma_out > 5)
    hue = np.angle(np.exp(1j * (np.arctan2(after[..., 2], after[..., 1]) - np.arctan2(before[..., 2], before[..., 1]))))
    assert np.degrees(np.abs(hue[coloured])).mean() < 3.0
    dark = mask & (before[..., 0] < albedo.CHROMA_DARK)
    assert dark.sum() > 1000 and np.abs(chroma_out[dark] - chroma_in[dark]).mean() < 1.5
    low, gain, floor = albedo.LIFT
    assert (after[..., 0][mask] >= low * before[..., 0][mask] - 0.5).all()
    assert np.isclose(albedo.bounded_lift(np.array([50.0]), np.array([0.0]))[0], 0.0)  # black stays black
    ramp = np.clip(before[..., 0] / albedo.CHROMA_DARK, 0.0, 1.0)  # the floor fades out towards black
    assert (after[..., 0][mask] <= gain * before[..., 0][mask] + floor * ramp[mask] + 0.5).all()
    lab = albedo.lab_albedo(image, mask)
    assert lab.min() >= 0.0 and lab.max() <= 1.0 and (lab[~mask] == 0).all()


def test_no_albedo_is_darker_than_the_picture() -> None:
    """A bright face above a dark suit: the LAB method's rescale to the person's mean lightness darkened
    the face to the suit's level, its colour with it; picture = albedo x shading with shading <= 1."""
    image = np.zeros((200, 120, 3), np.float32)
    mask = np.zeros((200, 120), bool)
    mask[20:190, 20:100] = True
    image[20:80, 20:100] = (0.55, 0.65, 0.9)  # a lit face (BGR)
    image[80:190, 20:100] = (0.18, 0.08, 0.06)  # a navy suit
    before = cv2.cvtColor(image, cv2.COLOR_BGR2Lab)
    for out in (albedo.lab_albedo(image, mask), albedo.multiscale_retinex(image, mask, [15, 80, 250])):
        after = cv2.cvtColor(out, cv2.COLOR_BGR2Lab)
        assert (after[..., 0][mask] >= before[..., 0][mask] - 0.5).all()
        face = np.s_[25:75, 25:95]
        chroma = [np.hypot(x[face][..., 1], x[face][..., 2]).mean() for x in (before, after)]
        assert chroma[1] >= 0.97 * chroma[0]  # the face keeps its colour


def test_albedo_method_chain_respects_probabilities() -> None:
    rng = np.random.default_rng(4)
    picks = [albedo.choose_method(["retinex", "lab"], [0.8, 1.0], rng) for _ in range(20000)]
    assert picks.count("retinex") / len(picks) == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("weights", [
    {"softShading": 0.8, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.2},
    {"softShading": 0.25, "hardShadow": 0.25, "specular": 0.4, "ambientOnly": 0.1},
    {"softShading": 0.8, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.0},  # the lab's: all soft shading
    {"softShading": 0.3, "hardShadow": 0.1, "specular": 0.0, "ambientOnly": 0.0},  # relative: 3 to 1
])
def test_degradation_weights_are_respected_over_many_draws(weights: dict[str, float]) -> None:
    config = {**DEGRADATION, "weights": weights}
    n = 20000
    counts = {m: 0 for m in degradation.METHODS}
    for seed in range(n):
        counts[degradation.draw_params(DegradationConfig.model_validate(config), seed).method] += 1
    for method, w in weights.items():
        assert counts[method] / n == pytest.approx(w / sum(weights.values()), abs=0.012), (method, counts)


@pytest.mark.parametrize("method", degradation.METHODS)
def test_params_round_trip_reproduces_the_image(method: str) -> None:
    config = {**DEGRADATION, "weights": {m: float(m == method) for m in degradation.METHODS}}
    normals, inside = sphere(65)
    alb = np.random.default_rng(5).uniform(0, 1, (65, 65, 3)).astype(np.float32)
    typed = DegradationConfig.model_validate(config)
    params = degradation.draw_params(typed, 1234)
    assert params.method == method and params == degradation.draw_params(typed, 1234)
    again = LightingParams.model_validate(json.loads(json.dumps(params.document())))  # the file, read back
    first = degradation.render(alb, normals, inside, params)
    np.testing.assert_array_equal(first, degradation.render(alb, normals, inside, again))
    assert first.min() >= 0 and first.max() <= 1 and (first[~inside] == 0).all()
    if method == "ambientOnly":
        np.testing.assert_allclose(first[inside], alb[inside] * params.ambient, rtol=1e-6)


@pytest.mark.parametrize("kind", ["perlin", "geometric", "blob"])
def test_shadow_patterns_are_deterministic_and_bounded(kind: str) -> None:
    a, b = shading.pattern(kind, (70, 90), 7), shading.pattern(kind, (70, 90), 7)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1 and a.std() > 0.01
    assert not np.array_equal(a, shading.pattern(kind, (70, 90), 8))


def _png(array: np.ndarray) -> bytes:
    return encode_png(array, bgr=True)


def test_decode_refuses_bad_inputs_with_reasons() -> None:
    color = np.random.default_rng(6).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert images.decode_color(_png(color)).shape == (32, 32, 3)
    cases = {
        "Unreadable": b"not an image at all",
        "Grayscale": _png(color[..., 0]),
        "TooSmall": _png(color[:8, :8]),
    }
    gray3 = np.repeat(color[..., :1], 3, axis=2)
    for reason, data in [*cases.items(), ("Grayscale", _png(gray3))]:
        with pytest.raises(SampleError) as err:
            images.decode_color(data)
        assert err.value.reason == reason
        assert "BytesIO" not in err.value.message and "0x" not in err.value.message  # about the file
    with pytest.raises(SampleError, match="12000x9000") as err:  # 108 MP, refused from the header alone
        images.decode_color(png_header(12000, 9000))
    assert err.value.reason == "TooLarge"
    sixteen = (color.astype(np.uint16) * 257)
    np.testing.assert_array_equal(images.decode_color(_png(sixteen)), color)


@pytest.mark.parametrize(("size", "max_side", "expected"), [
    ((1024, 768), 2048, (1024, 768)),
    ((6000, 6000), 2048, (2048, 2048)),
    ((6000, 4000), 2048, (2048, 1365)),
    ((3000, 6001), 1024, (512, 1024)),
    ((500, 400), None, (500, 400)),
])
def test_working_size(size: tuple[int, int], max_side: int | None, expected: tuple[int, int]) -> None:
    assert images.working_size(*size, max_side) == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_inputs_are_decoded_at_the_working_size(fmt: str) -> None:
    yy, xx = np.mgrid[0:3000, 0:4000]
    rgb = np.stack([xx * 255 // 3999, yy * 255 // 2999, (xx + yy) * 255 // 6998], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=95)
    small = images.decode_color(buf.getvalue(), max_side=1000)
    assert small.shape == (750, 1000, 3)
    expected = cv2.resize(rgb[..., ::-1], (1000, 750), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - expected.astype(int)).mean() < 2.0  # the same picture, smaller
    assert images.decode_color(buf.getvalue(), max_side=4000).shape == (3000, 4000, 3)
