"""Tests of imaging.denoisers: the DnCNN, weights files, patch inference and training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from imaging.denoisers import (
    DnCNN,
    denoise_frames,
    ensemble,
    generate_static_objects,
    load_denoiser,
    load_image_files,
    save_denoiser,
    save_ensemble,
    train_denoiser,
)
from imaging.denoisers.inference import native_bfloat16, patch_starts
from imaging.denoisers.weights import SHIPPED_DENOISERS, data_directory, file_sha256, provenance_path


def _psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(torch.mean((estimate - reference) ** 2)))


def _random_dncnn(depth: int, width: int, seed: int = 0, residual: bool = True) -> DnCNN:
    torch.manual_seed(seed)
    return DnCNN(depth, width, residual).eval()


# --- DnCNN -----------------------------------------------------------------------------


def test_dncnn_layers_and_shapes():
    model = DnCNN(depth=6, width=32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert (convs[0].in_channels, convs[0].out_channels) == (1, 32)
    assert (convs[-1].in_channels, convs[-1].out_channels) == (32, 1)
    expected_params = (9 * 32 + 32) + 4 * (9 * 32 * 32 + 32) + (9 * 32 + 1)
    assert sum(p.numel() for p in model.parameters()) == expected_params
    assert model.receptive_field == 13
    x = torch.rand(3, 1, 17, 23)
    y = model(x)
    assert y.shape == x.shape and y.dtype == torch.float32


def test_dncnn_residual_form_subtracts_network_output():
    residual = _random_dncnn(4, 8, residual=True)
    direct = DnCNN(4, 8, residual=False)
    direct.load_state_dict(residual.state_dict())
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(residual(x), x - direct.net(x))
    torch.testing.assert_close(direct(x), direct.net(x))


def test_bias_free_dncnn_is_scale_equivariant_and_keeps_zero():
    torch.manual_seed(3)
    model = DnCNN(4, 8, bias=False).eval()
    assert all(c.bias is None for c in model.modules() if isinstance(c, nn.Conv2d))
    x = torch.rand(2, 1, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(3.7 * x), 3.7 * model(x), rtol=1e-5, atol=1e-6)
        assert torch.count_nonzero(model(torch.zeros(1, 1, 12, 12))) == 0
    assert model.architecture == {"depth": 4, "width": 8, "residual": True, "bias": False}


def test_dilated_dncnn_widens_the_receptive_field_and_keeps_the_size():
    model = DnCNN(5, 4, residual=False, bias=False, dilations=[1, 2, 3, 2, 1]).eval()
    assert model.receptive_field == 19
    assert model.architecture["dilations"] == [1, 2, 3, 2, 1]
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.abs_()  # positive weights: every path carries the impulse
        impulse = torch.zeros(1, 1, 41, 41)
        impulse[0, 0, 20, 20] = 1.0
        support = model(impulse)[0, 0] > 0
        assert model(torch.rand(2, 1, 17, 23)).shape == (2, 1, 17, 23)
    expected = torch.zeros(41, 41, dtype=torch.bool)
    expected[11:30, 11:30] = True  # 19 x 19 around the impulse
    assert torch.equal(support, expected)


@pytest.mark.parametrize(
    "kwargs", [{"depth": 1}, {"width": 0}, {"depth": 2.5}, {"residual": "yes"}, {"bias": 0},
               {"depth": 3, "dilations": [1, 2]}, {"depth": 2, "dilations": [1, 0]}])
def test_dncnn_rejects_bad_architecture(kwargs):
    with pytest.raises(ValueError, match="DnCNN"):
        DnCNN(**kwargs)


def test_ensemble_returns_the_mean_of_its_members_in_one_network():
    torch.manual_seed(5)
    members = [DnCNN(4, 6, bias=False, dilations=[1, 2, 2, 1]).eval() for _ in range(3)]
    combined = ensemble(members)
    assert combined.architecture == {**members[0].architecture, "members": 3}
    assert sum(p.numel() for p in combined.parameters()) == 3 * sum(p.numel() for p in members[0].parameters())
    assert combined.receptive_field == members[0].receptive_field
    x = torch.rand(2, 1, 21, 18)
    with torch.no_grad():
        torch.testing.assert_close(combined(x), sum(m(x) for m in members) / 3, rtol=1e-5, atol=1e-6)
        # The mean of bias-free members is still scale-equivariant.
        torch.testing.assert_close(combined(2.5 * x), 2.5 * combined(x), rtol=1e-5, atol=1e-6)


def test_ensemble_of_one_network_is_that_network():
    member = _random_dncnn(3, 5, seed=8)
    single = ensemble([member])
    assert single.architecture == member.architecture
    x = torch.rand(1, 1, 15, 15)
    with torch.no_grad():
        torch.testing.assert_close(single(x), member(x))


@pytest.mark.parametrize("members", [[], [DnCNN(3, 4), DnCNN(3, 5)], [DnCNN(3, 4), DnCNN(3, 4, bias=False)],
                                     [DnCNN(3, 4, members=2)], [DnCNN(3, 4), nn.Identity()]])
def test_ensemble_refuses_members_it_cannot_average(members):
    with pytest.raises(ValueError, match="ensemble"):
        ensemble(members)


@pytest.mark.parametrize("members", [0, 9, True, 1.5])
def test_dncnn_rejects_bad_member_counts(members):
    with pytest.raises(ValueError, match="members"):
        DnCNN(3, 4, members=members)


def test_dncnn_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        DnCNN(3, 4)(torch.rand(2, 16, 16))


# --- weights files ---------------------------------------------------------------------


def test_shipped_ensemble_is_the_mean_of_its_recorded_members():
    weights = data_directory() / SHIPPED_DENOISERS["dncnn-e3"]
    provenance = json.loads(provenance_path(weights).read_text())
    assert provenance["sha256"] == file_sha256(weights)
    members = provenance["members"]
    assert provenance["architecture"]["members"] == len(members) == 3
    assert members[0]["member"] == "dncnn-v3" and members[0]["sha256"] == file_sha256(
        data_directory() / SHIPPED_DENOISERS["dncnn-v3"])
    # The other two: v3's training command with another seed (same data recipe and pairs).
    v3_arguments = members[0]["provenance"]["arguments"]
    for seed, member in zip((1, 2), members[1:]):
        assert {**member["provenance"]["arguments"], "output": None, "seed": 0} == {**v3_arguments, "output": None}
        assert member["provenance"]["seed"] == seed
    ensemble_net, v3 = load_denoiser("dncnn-e3"), load_denoiser("dncnn-v3")
    first = DnCNN(5, 24, True, bias=False)
    first.load_state_dict({name: value[: value.shape[0] // 3] for name, value in ensemble_net.state_dict().items()})
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(first(x), v3(x))  # member 0 is dncnn-v3 itself


def test_shipped_default_loads_and_matches_provenance():
    weights = data_directory() / SHIPPED_DENOISERS["default"]
    provenance = json.loads(provenance_path(weights).read_text())
    assert provenance["sha256"] == file_sha256(weights)
    assert weights.stat().st_size < 1_000_000
    model = load_denoiser("default", device="cpu")
    assert isinstance(model, DnCNN) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.architecture == provenance["architecture"]


def test_save_and_load_round_trip(tmp_path):
    model = _random_dncnn(3, 6, seed=3)
    path = tmp_path / "net.pt"
    sha = save_denoiser(model, path)
    assert sha == file_sha256(path)
    loaded = load_denoiser(path)
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(loaded(x), model(x))
    assert not list(tmp_path.glob(".*tmp")), "atomic save left a temporary file"


def test_saved_ensemble_records_its_members_and_loads_verified(tmp_path, recwarn):
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"member{seed}.pt")
        train_denoiser(paths[-1], n_images=4, size=32, depth=3, width=4, epochs=1, batch_size=2, patch_size=16,
                       seed=seed, progress=False)
    out = tmp_path / "pair.pt"
    provenance = save_ensemble(paths, out)
    assert provenance["architecture"]["members"] == 2 and provenance["sha256"] == file_sha256(out)
    assert [m["sha256"] for m in provenance["members"]] == [file_sha256(p) for p in paths]
    assert [m["provenance"]["seed"] for m in provenance["members"]] == [1, 2]
    loaded = load_denoiser(out)
    assert not [w for w in recwarn if "not verified" in str(w.message)]
    x = torch.rand(2, 1, 20, 20)
    with torch.no_grad():
        expected = sum(load_denoiser(p)(x) for p in paths) / 2
        torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("members, message", [(["dncnn-v3"], "at least 2"), (["dncnn-v3", "dncnn-v1"], "architecture"),
                                              (["dncnn-v3", "missing.pt"], "not found")])
def test_save_ensemble_refuses_bad_members_and_writes_nothing(tmp_path, members, message):
    out = tmp_path / "ensemble.pt"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        save_ensemble(members, out)
    assert list(tmp_path.iterdir()) == []


def test_the_same_weights_give_the_same_file_under_any_name(tmp_path):
    # A SHA-256 that names weights must not depend on where they were first written.
    model = _random_dncnn(3, 6, seed=3)
    first = save_denoiser(model, tmp_path / "net.pt")
    assert save_denoiser(model, tmp_path / "elsewhere" / "another_name.pt") == first
    assert save_denoiser(_random_dncnn(3, 6, seed=4), tmp_path / "other.pt") != first


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(DnCNN(3, 4), path)  # a whole pickled module: loading it would run code
    with pytest.raises(ValueError, match="tensors-only"):
        load_denoiser(path)


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(ValueError, match="not a denoiser weights file .not a PyTorch zip archive"):
        load_denoiser(corrupt)
    bare_state_dict = tmp_path / "bare.pt"
    torch.save(DnCNN(3, 4).state_dict(), bare_state_dict)
    with pytest.raises(ValueError, match="not an imaging denoiser weights file"):
        load_denoiser(bare_state_dict)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_denoiser(tmp_path / "missing.pt")


def test_sha_mismatch_with_provenance_is_refused(tmp_path):
    path = tmp_path / "net.pt"
    save_denoiser(DnCNN(3, 4), path)
    provenance_path(path).write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ValueError, match="SHA-256"):
        load_denoiser(path)


# --- denoise_frames --------------------------------------------------------------------


def test_patch_starts_cover_the_axis_and_end_at_the_edge():
    assert patch_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert patch_starts(20, 32, 16) == [0]
    assert patch_starts(64, 32, 32) == [0, 32]


@pytest.mark.parametrize("patch_size, overlap", [(24, 16), (32, 16), (21, 17)])
def test_patch_mode_equals_full_image_mode(patch_size, overlap):
    # Receptive field 7 < overlap / 2: every blended value comes from a patch region
    # that is unaffected by the patch's own borders.
    model = _random_dncnn(3, 4, seed=1)
    frames = torch.rand(3, 50, 61)
    full = denoise_frames(model, frames)
    patched = denoise_frames(model, frames, patch_size=patch_size, patch_overlap=overlap, batch_size=32)
    torch.testing.assert_close(patched, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape, patch_size, overlap", [((2, 40, 40), 16, 8), ((1, 33, 70), 32, 0),
                                                         ((2, 10, 12), 32, 16), ((1, 45, 45), 17, 16)])
def test_patch_blending_of_identity_reproduces_input(shape, patch_size, overlap):
    frames = torch.rand(*shape, dtype=torch.float64)
    out = denoise_frames(nn.Identity(), frames, patch_size=patch_size, patch_overlap=overlap, batch_size=7)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, frames, atol=1e-6, rtol=0)


def test_denoise_frames_keeps_array_type_and_does_not_track_gradients():
    model = _random_dncnn(3, 4)
    frames = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    out = denoise_frames(model, frames, batch_size=3)
    assert isinstance(out, np.ndarray) and out.shape == frames.shape and out.dtype == np.float32
    expected = model(torch.from_numpy(frames)[:, None])[:, 0].detach().numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    tracked = torch.from_numpy(frames).requires_grad_(True)
    assert not denoise_frames(model, tracked).requires_grad


@pytest.mark.parametrize("kwargs, message", [({"frames": torch.rand(16, 16)}, r"\(P, H, W\)"),
                                             ({"patch_size": 16, "patch_overlap": 16}, "patch_overlap"),
                                             ({"patch_size": 0}, "patch_size"),
                                             ({"batch_size": 0}, "batch_size"),
                                             ({"precision": "float16"}, "precision")])
def test_denoise_frames_rejects_bad_arguments(kwargs, message):
    arguments = {"frames": torch.rand(2, 16, 16), **kwargs}
    with pytest.raises(ValueError, match=message):
        denoise_frames(nn.Identity(), **arguments)


@pytest.mark.parametrize("patch_size", [None, 24])
def test_bfloat16_denoising_rounds_far_below_what_the_denoiser_removes(patch_size):
    model = load_denoiser("default")
    clean = torch.from_numpy(generate_static_objects(2, size=48, seed=2024))
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    exact = denoise_frames(model, noisy, patch_size=patch_size, patch_overlap=16)
    rounded = denoise_frames(model, noisy, patch_size=patch_size, patch_overlap=16, precision="bfloat16")
    assert rounded.dtype == torch.float32 and rounded.shape == noisy.shape
    rounding = float(torch.mean((rounded - exact) ** 2))
    removed = float(torch.mean((noisy - exact) ** 2))
    assert 0 < rounding < 1e-3 * removed
    assert _psnr(rounded, clean) > _psnr(noisy, clean) + 4.0


def test_native_bfloat16_is_a_cpu_property():
    assert isinstance(native_bfloat16("cpu"), bool)
    assert native_bfloat16("cuda") is False


# --- training data and training --------------------------------------------------------


def test_generated_objects_are_normalised_static_images_in_the_disk():
    images = generate_static_objects(6, size=32, seed=5)
    assert images.shape == (6, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0.0
    np.testing.assert_allclose(images.max(axis=(1, 2)), 1.0)
    axis = (np.arange(32) + 0.5) / 16 - 1
    outside = np.hypot(axis[:, None], axis[None, :]) > 1
    assert np.all(images[:, outside] == 0)
    np.testing.assert_array_equal(images, generate_static_objects(6, size=32, seed=5))
    assert not np.array_equal(images, generate_static_objects(6, size=32, seed=6))


def test_load_image_files_reads_npy_stacks_tiff_and_png(tmp_path):
    import imageio.v3 as iio
    import tifffile

    rng = np.random.default_rng(0)
    np.save(tmp_path / "stack.npy", rng.random((3, 20, 24)) * 500)
    tifffile.imwrite(tmp_path / "slice.tif", rng.integers(0, 4000, (20, 20)).astype(np.uint16))
    iio.imwrite(tmp_path / "photo.png", rng.integers(0, 255, (20, 22, 3)).astype(np.uint8))
    np.save(tmp_path / "constant.npy", np.ones((20, 20)))
    (tmp_path / "notes.txt").write_text("ignored")
    images = load_image_files(tmp_path)
    assert len(images) == 5  # 3 stack slices + tif + png; the constant image is skipped
    for image in images:
        assert image.ndim == 2 and image.dtype == np.float32
        assert image.min() == 0.0 and image.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unsupported type"):
        load_image_files([tmp_path / "notes.txt"])


def test_training_lowers_validation_loss_and_writes_provenance(tmp_path):
    output = tmp_path / "tiny.pt"
    provenance = train_denoiser(output, n_images=20, size=32, depth=3, width=8, epochs=8, batch_size=4,
                                patch_size=24, noise_range=(0.05, 0.1), clean_fraction=0.0, streak_fraction=0.0,
                                loss_floor=None, lr=1e-2, val_fraction=0.2, seed=0, progress=False, threads=1)
    validation = provenance["validation"]
    assert validation["mse_after"] < 0.9 * validation["mse_before"]
    assert provenance["sha256"] == file_sha256(output)
    on_disk = json.loads(provenance_path(output).read_text())
    assert on_disk["sha256"] == provenance["sha256"] and on_disk["epochs"] == 8
    assert [row["noise_std"] for row in validation["psnr_db"]] == [0.05, 0.1]
    assert load_denoiser(output).architecture == {"depth": 3, "width": 8, "residual": True, "bias": False}


def test_training_on_image_files(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    np.save(folder / "objects.npy", generate_static_objects(6, size=32, seed=9) * 1000)
    provenance = train_denoiser(tmp_path / "files.pt", data=folder, depth=2, width=4, epochs=1, batch_size=4,
                                patch_size=16, seed=1, progress=False)
    assert provenance["data"]["source"] == "image files"
    assert provenance["data"]["n_train"] + provenance["data"]["n_validation"] == 6
    with pytest.raises(ValueError, match="smaller than patch_size"):
        train_denoiser(tmp_path / "big.pt", data=folder, patch_size=64, progress=False)


@pytest.mark.parametrize("kwargs, message", [({"noise_range": (0.1, 0.0)}, "noise_range"),
                                             ({"epochs": 0}, "epochs"),
                                             ({"val_fraction": 1.0}, "val_fraction")])
def test_training_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_denoiser(tmp_path / "x.pt", progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"\.pt"):
        train_denoiser(tmp_path / "x.json", progress=False)


# --- the shipped default on a static test image ----------------------------------------


def test_shipped_default_denoises_and_keeps_clean_images():
    model = load_denoiser("default")
    # Unseen static objects (the training used seed 0); size 64 keeps the test fast.
    clean = torch.from_numpy(generate_static_objects(4, size=64, seed=2024))
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    denoised = denoise_frames(model, noisy)
    assert _psnr(denoised, clean) > _psnr(noisy, clean) + 4.0
    assert _psnr(denoise_frames(model, clean), clean) > 45.0


def _solver_scaled(frames: np.ndarray) -> torch.Tensor:
    """Frames divided by their 0.999 quantile of |x|, as RED-PSM normalises its estimate."""
    return torch.from_numpy(frames / np.quantile(np.abs(frames), 0.999)).float()


@pytest.mark.parametrize("phantom", ["walnut", "material", "shepp_logan", "cardiac"])
@pytest.mark.parametrize("name, once, ten", [("dncnn-v2", 45.0, 40.0), ("default", 39.0, 31.0), ("dncnn-e3", 39.0, 31.0)])
def test_shipped_denoisers_keep_clean_frames_clean_also_when_applied_again(phantom, name, once, ten):
    """PSNR(D(x), x) on clean frames at the benchmark size N=128 that the denoiser was not
    trained on (the training used generated objects only), once and after ten applications
    (benchmarks/denoiser.py measures the same on 16 frames). ``dncnn-v2`` meets issue 10's
    45 / 40 dB; the default ``dncnn-v3`` trades about 5 dB of it for 0.9-2.4 dB more inside
    RED-PSM (benchmarks/results/tune_red_psm.md, section 7), and is held to what it measured;
    the ensemble ``dncnn-e3`` measures within 1 dB of it."""
    from imaging.phantoms import get_phantom

    model = load_denoiser(name)
    clean = _solver_scaled(get_phantom(phantom)(frames=2, size=128, seed=0))
    data_range = float(clean.max() - clean.min())

    def psnr(estimate):
        return 10 * math.log10(data_range**2 / float(torch.mean((estimate - clean) ** 2)))

    repeated = denoise_frames(model, clean)
    assert psnr(repeated) >= once
    for _ in range(9):
        repeated = denoise_frames(model, repeated)
    assert psnr(repeated) >= ten
    # Bias-free: the same at any intensity scale, so the solver's normalisation does not matter.
    torch.testing.assert_close(denoise_frames(model, 3.0 * clean), 3.0 * denoise_frames(model, clean),
                               rtol=1e-4, atol=1e-5)


def test_denoise_layout_bounds_the_working_memory():
    from imaging.denoisers.inference import AUTO_PATCH_SIZE, denoise_layout, working_bytes_per_pixel

    model = DnCNN(depth=3, width=16)
    per_pixel = working_bytes_per_pixel(model)
    assert per_pixel == 8 * 16 + 40
    # An ensemble runs its members one after another: one member's activations at a time.
    assert working_bytes_per_pixel(DnCNN(depth=3, width=16, members=3)) == per_pixel
    # Small frames: whole frames, at most 8 per call.
    assert denoise_layout(model, (64, 64)) == (None, 8)
    # The batch shrinks with the frame: two frames' activations fit.
    assert denoise_layout(model, (100, 100), working_bytes=2 * per_pixel * 100 * 100) == (None, 2)
    # One frame does not fit: patches, as many as fit (at least one); on a GPU the memory alone decides.
    patch_bytes = per_pixel * AUTO_PATCH_SIZE**2
    assert denoise_layout(model, (1024, 1024), working_bytes=3 * patch_bytes, device="cuda") == (AUTO_PATCH_SIZE, 3)
    assert denoise_layout(model, (1024, 1024), working_bytes=patch_bytes // 2) == (AUTO_PATCH_SIZE, 1)
    # Explicit values are kept.
    assert denoise_layout(model, (1024, 1024), patch_size=64, batch_size=5) == (64, 5)


def test_denoise_layout_keeps_a_cpu_call_within_the_caches():
    from imaging.denoisers.inference import CPU_PIXELS_PER_CALL, MAX_AUTO_BATCH, denoise_layout

    model = DnCNN(depth=3, width=16)
    for size in (64, 128, 256, 512):
        _, batch = denoise_layout(model, (size, size))
        assert batch == max(1, min(MAX_AUTO_BATCH, CPU_PIXELS_PER_CALL // size**2))
        assert batch * size**2 <= CPU_PIXELS_PER_CALL or batch == 1
    assert denoise_layout(model, (256, 256), device="cuda") == (None, MAX_AUTO_BATCH)
    assert denoise_layout(model, (256, 256), batch_size=8) == (None, 8)


def test_training_on_reconstruction_pairs_learns_their_degradation(tmp_path):
    from imaging.denoisers.training_data import ImagePairs

    clean = generate_static_objects(12, size=32, seed=5)
    # A fixed, structured degradation (stripes) the white-noise source never shows.
    stripes = 0.08 * np.sin(np.arange(32) * 1.3)[None, None, :].astype(np.float32)
    pairs = ImagePairs(clean + stripes, clean, np.arange(12) // 2, {"source": "test stripes"})
    provenance = train_denoiser(tmp_path / "pairs.pt", n_images=8, size=32, depth=3, width=8, epochs=200,
                                batch_size=8, patch_size=24, pairs=pairs, pair_fraction=0.75, clean_fraction=0.05,
                                loss_floor=0.05,
                                noise_sampling="log-uniform", lr=1e-2, seed=0, progress=False, threads=1)
    record = provenance["data"]["pairs"]
    assert record["source"] == "test stripes" and record["n_train"] + record["n_validation"] == 12
    assert record["n_validation"] % 2 == 0  # whole groups are held out
    assert record["validation_psnr_db"]["denoised"] > record["validation_psnr_db"]["input"] + 1.0
    assert provenance["noise"]["sampling"] == "log-uniform"
    assert load_denoiser(tmp_path / "pairs.pt").architecture["bias"] is False


def test_image_pairs_and_pair_arguments_are_checked(tmp_path):
    from imaging.denoisers.training_data import ImagePairs

    with pytest.raises(ValueError, match="one shape"):
        ImagePairs(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)), [0, 1], {})
    with pytest.raises(ValueError, match="NaN"):
        ImagePairs(np.full((2, 8, 8), np.nan), np.zeros((2, 8, 8)), [0, 1], {})
    with pytest.raises(ValueError, match="needs pairs"):
        train_denoiser(tmp_path / "x.pt", pair_fraction=0.5, progress=False)
    one_group = ImagePairs(np.zeros((2, 32, 32)), np.zeros((2, 32, 32)), [0, 0], {})
    with pytest.raises(ValueError, match="2 groups"):
        train_denoiser(tmp_path / "x.pt", n_images=4, size=32, pairs=one_group, pair_fraction=0.5, progress=False)
    with pytest.raises(TypeError, match="must return an ImagePairs"):
        train_denoiser(tmp_path / "x.pt", n_images=4, size=32, pairs=lambda: None, pair_fraction=0.5, progress=False)
    with pytest.raises(ValueError, match="noise_sampling"):
        train_denoiser(tmp_path / "x.pt", noise_sampling="gamma", progress=False)
