"""Dynamic tomography and MRI operators: adjointness, gradients, norms, physics, errors."""

import math

import numpy as np
import pytest
import torch

from imaging.operators import DynamicMRI, DynamicTomography, disk_mask, fft2c, ifft2c
from imaging.schedules import kt_mask
from imaging.operators import tomography as tomography_module

# -- helpers --------------------------------------------------------------------------------


def _angles(frames, views, seed=0):
    return np.random.default_rng(seed).uniform(0, np.pi, size=(frames, views))


def _coil_maps(n_coils, shape, seed=0):
    """Smooth complex coil sensitivities normalised to sum_c |S_c|^2 = 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]] / max(shape)
    maps = []
    for _ in range(n_coils):
        cy, cx, phase = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 2 * np.pi)
        maps.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.3) * np.exp(1j * (phase + 3 * xx)))
    maps = np.asarray(maps)
    return (maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))).astype(np.complex64)


def _mask(frames, shape, seed=0):
    """Random phase-encode lines per frame (rows), centre row always sampled."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((frames, *shape), dtype=bool)
    for p in range(frames):
        mask[p, rng.choice(shape[0], size=max(1, shape[0] // 4), replace=False)] = True
        mask[p, shape[0] // 2] = True
    return mask


def _centred_grid(n):
    """Pixel centre coordinates (x to the right, y up) relative to the rotation centre."""
    rows, cols = np.mgrid[:n, :n]
    centre = (n - 1) / 2
    return cols - centre, centre - rows


def _tomography_case(n, views, projector, support, backend="sparse"):
    return lambda: DynamicTomography(
        _angles(3, views), (n, n), projector=projector, support=support, projector_backend=backend
    )


def _geometry_case(n, views, projector, geometry, backend="sparse"):
    return lambda: DynamicTomography(
        _angles(3, views) * 2, (n, n), n_detectors=n + 6, projector=projector, projector_backend=backend, **geometry
    )


#: Geometries beyond the centred parallel beam: an axis offset, a fan beam, both.
GEOMETRY_CASES = {
    "offset": {"center_offset": -2.3},
    "fan": {"geometry": "fan", "source_origin": 40.0, "origin_detector": 20.0, "detector_spacing": 1.5},
    "fan-offset": {"geometry": "fan", "source_origin": 30.0, "origin_detector": 45.0, "center_offset": 3.7},
}


def _point_mask(frames, shape, seed=0):
    """Random k-space points per frame (no whole rows): the full-grid layout."""
    mask = np.random.default_rng(seed).random((frames, *shape)) < 0.3
    mask[:, shape[0] // 2, 0] = True
    return mask


def _line_mask(frames, shape, lines=3):
    """The same number of whole rows in every frame: the line-sampled layout."""
    return kt_mask("variable-density", frames, shape, lines, center_lines=1, seed=1)


def _mri_case(shape, coils, complex_image, sampling):
    maps = None if coils == 0 else _coil_maps(coils, shape)
    mask = (_point_mask if sampling == "points" else _line_mask)(3, shape)
    return lambda: DynamicMRI(mask, maps, complex_image=complex_image)


OPERATOR_CASES = {
    **{
        f"tomo-N{n}-V{v}-{projector}-{support}": _tomography_case(n, v, projector, support)
        for n in (16, 33)
        for v in (1, 3)
        for projector in ("line", "linear", "strip")
        for support in ("disk", "square")
    },
    **{
        f"tomo-N{n}-V{v}-{projector}-{name}": _geometry_case(n, v, projector, geometry)
        for n in (16, 33)
        for v in (1, 3)
        for name, geometry in GEOMETRY_CASES.items()
        for projector in ("line", "linear", "strip")
        if not (name.startswith("fan") and projector == "linear") and not (name == "fan-offset" and projector == "strip")
    },
    **{
        f"tomo-matrix-free-N{n}-V{v}-{projector}-{support}": _tomography_case(n, v, projector, support, "matrix-free")
        for n in (16, 33)
        for v in (1, 3)
        for projector in ("line", "strip")
        for support in ("disk", "square")
    },
    **{
        f"tomo-matrix-free-N{n}-V3-{projector}-{name}": _geometry_case(n, 3, projector, geometry, "matrix-free")
        for n in (16, 33)
        for name, geometry in GEOMETRY_CASES.items()
        for projector in ("line", "strip")
        if not (name == "fan-offset" and projector == "strip")
    },
    **{
        f"mri-{shape[0]}x{shape[1]}-{'single' if coils == 0 else f'{coils}coils'}-{'complex' if cplx else 'real'}"
        f"-{sampling}": _mri_case(shape, coils, cplx, sampling)
        for shape in ((16, 16), (12, 20), (15, 16))  # odd sizes take the shift path
        for coils in (0, 3)
        for cplx in (False, True)
        for sampling in ("points", "lines")
    },
}


# -- adjointness, gradients, norm -------------------------------------------------------------


@pytest.mark.parametrize("case", list(OPERATOR_CASES), ids=list(OPERATOR_CASES))
def test_adjointness(case):
    operator = OPERATOR_CASES[case]()
    for seed in range(2):
        assert operator.adjointness_error(seed=seed) <= 1e-5


@pytest.mark.parametrize(
    "case",
    ["tomo-N16-V3-line-disk", "tomo-matrix-free-N16-V3-line-disk", "mri-16x16-3coils-real-points",
     "mri-12x20-3coils-complex-points", "mri-15x16-3coils-complex-lines", "mri-16x16-3coils-real-lines"],
)
def test_autograd_gradients_are_the_adjoint_and_forward(case):
    operator = OPERATOR_CASES[case]()
    gen = torch.Generator().manual_seed(1)
    x = operator.random_domain(gen).requires_grad_(True)
    y = operator.random_range(gen)
    _real_inner(operator.forward(x), y).backward()
    assert torch.allclose(x.grad, operator.adjoint(y), rtol=1e-5, atol=1e-5)

    y = y.clone().requires_grad_(True)
    x = x.detach()
    _real_inner(x, operator.adjoint(y)).backward()
    # For a complex y, the gradient of the real inner product is A x itself.
    assert torch.allclose(y.grad, operator.forward(x), rtol=1e-5, atol=1e-5)


def _real_inner(a, b):
    if a.is_complex() or b.is_complex():
        return torch.sum(torch.real(a * torch.conj(b)))
    return torch.sum(a * b)


def _dense_matrix(operator):
    """The operator as a dense real matrix (complex ranges split into real and imaginary)."""
    n_in = math.prod(operator.domain_shape)
    columns = []
    with torch.no_grad():
        for j in range(n_in):
            e = torch.zeros(n_in)
            e[j] = 1.0
            out = operator.forward(e.reshape(operator.domain_shape).to(operator.domain_dtype))
            columns.append(torch.view_as_real(out).reshape(-1) if out.is_complex() else out.reshape(-1))
    return torch.stack(columns, dim=1).double().numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: DynamicTomography(_angles(3, 2), (10, 10)),
        lambda: DynamicMRI(_mask(2, (6, 6)), _coil_maps(2, (6, 6)) * np.linspace(0.5, 1.5, 6)[None, :, None]),
    ],
    ids=["tomography", "mri-2coils"],
)
def test_norm_estimate_matches_the_largest_singular_value(make):
    operator = make()
    largest = np.linalg.svd(_dense_matrix(operator), compute_uv=False)[0]
    assert operator.norm(n_iter=200, tol=1e-9) == pytest.approx(largest, rel=1e-3)


def test_frame_blocks_and_threads_do_not_change_the_products(monkeypatch):
    angles = _angles(7, 2, seed=3)
    single = DynamicTomography(angles, (20, 20))
    monkeypatch.setattr(tomography_module, "_NONZEROS_PER_BLOCK", 1500)  # about one frame per block
    blocked = DynamicTomography(angles, (20, 20))
    assert len(single._blocks) == 1 and len(blocked._blocks) >= 4
    assert blocked.nbytes - single.nbytes == 4 * (len(blocked._blocks) - 1)  # one indptr entry per extra block
    _assert_same_products(single, blocked, torch.equal)
    assert blocked.adjointness_error() <= 1e-6


def _assert_same_products(reference, other, same):
    """``same(other's product, reference's)`` for forward and adjoint, on 1 and 2 threads."""
    gen = torch.Generator().manual_seed(0)
    x, y = reference.random_domain(gen), reference.random_range(gen)
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            assert same(other.forward(x), reference.forward(x))
            assert same(other.adjoint(y), reference.adjoint(y))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "projector, geometry",
    [(p, "centred") for p in ("line", "linear", "strip")]
    + [(p, name) for name in GEOMETRY_CASES for p in ("line", "strip") if (name, p) != ("fan-offset", "strip")],
)
@pytest.mark.parametrize("support", ["disk", "square"])
def test_matrix_free_products_equal_the_sparse_ones(projector, geometry, support):
    # ASTRA's FP/BP walk the same weights as its projection matrix, in the same order.
    angles = _angles(5, 2, seed=4) * 2
    kwargs = dict(n_detectors=29, detector_spacing=0.8, projector=projector, support=support)
    kwargs.update(GEOMETRY_CASES.get(geometry, {}))
    sparse = DynamicTomography(angles, (24, 24), projector_backend="sparse", **kwargs)
    free = DynamicTomography(angles, (24, 24), projector_backend="matrix-free", **kwargs)
    assert (sparse.projector_backend, free.projector_backend) == ("sparse", "matrix-free")
    _assert_same_products(sparse, free, lambda a, b: torch.allclose(a, b, rtol=1e-6, atol=1e-6))
    assert free.nbytes < sparse.nbytes / 20  # no weights held


def test_matrix_free_ignores_what_lies_outside_the_disk():
    angles = _angles(2, 2)
    free = DynamicTomography(angles, (16, 16), projector_backend="matrix-free")
    x = torch.zeros(2, 16, 16)
    x[:, 0, 0] = math.inf  # a corner pixel, outside the inscribed disk
    assert torch.equal(free.forward(x), torch.zeros(free.range_shape))
    back = free.adjoint(torch.ones(free.range_shape))
    assert torch.all(back[:, 0, 0] == 0) and torch.all(back[:, 8, 8] > 0)


def test_projector_backend_auto_follows_the_memory_share():
    from imaging.operators.tomography_matrix_free import SPARSE_MEMORY_SHARE, choose_projector_backend

    weights_bytes = 8 * 1024 * 256 * 1 * 1024  # N=1024, P=256, one view, D=1024: 2 GiB
    fits = int(weights_bytes / SPARSE_MEMORY_SHARE)
    assert choose_projector_backend("auto", 1024, 256, 1, 1024, memory_bytes=fits) == "sparse"
    assert choose_projector_backend("auto", 1024, 256, 1, 1024, memory_bytes=fits - 1) == "matrix-free"
    assert choose_projector_backend("auto", 1024, 256, 1, 1024, "cuda", memory_bytes=1) == "sparse"
    assert choose_projector_backend("matrix-free", 8, 1, 1, 8) == "matrix-free"
    assert DynamicTomography(_angles(2, 1), (8, 8)).projector_backend == "sparse"  # small: sparse


def test_projector_backend_auto_follows_the_memory_available(monkeypatch):
    # 8 B x N x P x V x D = 2 MiB of weights: sparse under 16 MiB of room, matrix-free under 8.
    angles = _angles(64, 1)
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "16MiB")
    assert DynamicTomography(angles, (64, 64)).projector_backend == "sparse"
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "8MiB")
    assert DynamicTomography(angles, (64, 64)).projector_backend == "matrix-free"
    with pytest.raises(ValueError, match="projector_backend must be one of"):
        DynamicTomography(_angles(2, 1), (8, 8), projector_backend="dense")


def test_operator_memory_is_sparse():
    operator = DynamicTomography(_angles(8, 1), (32, 32))
    dense_bytes = 4 * math.prod(operator.range_shape) * math.prod(operator.domain_shape)
    matrices = [block.matrix for block in operator._blocks]
    assert operator.nbytes == sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in matrices)
    # Block diagonal and sparse within a frame: far below the dense matrix.
    assert operator.nbytes < dense_bytes / 100


def test_mri_operator_memory_counts_its_tensors():
    frames, shape, coils = 2, (8, 6), 3
    even = DynamicMRI(_point_mask(frames, shape), _coil_maps(coils, shape))
    pixels = shape[0] * shape[1]
    mask_bytes, maps_bytes = frames * pixels, coils * pixels * 8
    # plain mask and maps, plus their modulated forms (maps; real float32 mask)
    assert even.nbytes == mask_bytes + 2 * maps_bytes + 4 * frames * pixels
    odd = DynamicMRI(_point_mask(frames, (7, 6)), _coil_maps(coils, (7, 6)))
    assert odd.nbytes == frames * 42 + coils * 42 * 8
    lines = DynamicMRI(_line_mask(frames, shape, lines=3), _coil_maps(coils, shape))
    # mask, maps and the readout-modulated maps with their conjugate; the rows (int64) and the
    # DFT rows and their adjoint (complex64)
    assert lines.nbytes == mask_bytes + 3 * maps_bytes + frames * 3 * 8 + 2 * frames * 3 * shape[0] * 8


@pytest.mark.parametrize("shape", [(16, 12), (15, 9)])
@pytest.mark.parametrize("complex_image", [False, True])
def test_line_sampled_range_holds_the_sampled_rows_of_the_full_grid(shape, complex_image):
    mask, maps = _line_mask(4, shape, lines=5), _coil_maps(2, shape)
    lines = DynamicMRI(mask, maps, complex_image=complex_image)
    assert lines.line_sampled and lines.range_shape == (4, 2, 5, shape[1])
    np.testing.assert_array_equal(lines.sampled_rows.numpy(), np.nonzero(mask[:, :, 0])[1].reshape(4, 5))
    x = lines.random_domain(torch.Generator().manual_seed(3))
    full = torch.from_numpy(mask)[:, None] * fft2c(torch.from_numpy(maps)[None] * x[:, None].to(torch.complex64))
    y = lines.forward(x)
    assert torch.allclose(lines.zero_filled(y), full, atol=1e-5)
    assert torch.allclose(lines.measured(full.numpy()), y, atol=1e-5)
    # A mask with a varying number of rows, or with part of a row, keeps the full grid.
    uneven = mask.copy()
    uneven[0, 0] = ~uneven[0, 0]
    assert not DynamicMRI(uneven, maps).line_sampled
    partial = mask.copy()
    partial[0, shape[0] // 2, 0] = False
    assert not DynamicMRI(partial, maps).line_sampled


# -- tomography: ASTRA convention and physical invariants ---------------------------------------


def _astra_line_sinogram(image, angles, n_detectors, spacing=1.0):
    import astra

    vol_geom = astra.create_vol_geom(*image.shape)
    proj_geom = astra.create_proj_geom("parallel", spacing, n_detectors, np.asarray(angles, dtype=np.float64))
    projector = astra.create_projector("line", proj_geom, vol_geom)
    try:
        sino_id, sinogram = astra.create_sino(image.astype(np.float32), projector)
        astra.data2d.delete(sino_id)
    finally:
        astra.projector.delete(projector)
    return sinogram


@pytest.mark.parametrize("n, n_detectors, spacing", [(24, 24, 1.0), (17, 30, 0.75)])
def test_forward_equals_astra_line_projection(n, n_detectors, spacing):
    rng = np.random.default_rng(5)
    images = (rng.uniform(0, 1, size=(4, n, n)) * disk_mask(n)).astype(np.float32)
    angles = _angles(4, 3, seed=2) * 2  # some views beyond pi too
    operator = DynamicTomography(angles, (n, n), n_detectors=n_detectors, detector_spacing=spacing)
    sinogram = operator.forward(torch.from_numpy(images)).numpy()
    for p in range(4):
        expected = _astra_line_sinogram(images[p], angles[p], n_detectors, spacing)
        assert np.allclose(sinogram[p], expected, rtol=1e-5, atol=1e-5 * expected.max())


def _smooth_blob(n, x0=3.0, y0=-2.0, sigma=5.0):
    x, y = _centred_grid(n)
    return (np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) * disk_mask(n)).astype(np.float32)


@pytest.mark.parametrize(
    "projector, image, tolerance",
    [
        ("strip", "disk", 1e-5),  # area weights: exact for any object in the field of view
        ("strip", "blob", 1e-5),
        ("line", "blob", 2e-4),  # ray sampling: exact up to the sampling error of a smooth object
        ("linear", "blob", 2e-4),
    ],
)
def test_mass_is_conserved_at_every_angle(projector, image, tolerance):
    n = 48
    x, y = _centred_grid(n)
    frame = _smooth_blob(n) if image == "blob" else (x**2 + y**2 < (0.4 * n) ** 2).astype(np.float32)
    angles = np.linspace(0, np.pi, 19)[:, None]
    operator = DynamicTomography(angles, (n, n), projector=projector)
    sinogram = operator.forward(torch.from_numpy(np.repeat(frame[None], len(angles), axis=0)))
    sums = sinogram.double().sum(dim=(1, 2)).numpy()
    assert np.max(np.abs(sums - frame.sum())) / frame.sum() <= tolerance


def test_opposite_angles_give_the_detector_reversed_projection():
    n = 24
    rng = np.random.default_rng(7)
    image = (rng.uniform(0, 1, size=(n, n)) * disk_mask(n)).astype(np.float32)
    angles = np.array([0.0, 0.3, 1.1, np.pi / 2, 2.5])
    both = np.stack([angles, angles + np.pi], axis=1)  # (P, 2): theta and theta + pi
    sinogram = DynamicTomography(both, (n, n)).forward(torch.from_numpy(np.repeat(image[None], 5, axis=0)))
    assert torch.allclose(sinogram[:, 1], torch.flip(sinogram[:, 0], dims=[-1]), rtol=1e-5, atol=1e-5)


def test_centred_point_source_peaks_at_the_centre_bin_for_every_angle():
    n = 33  # odd: pixel 16 is the rotation centre
    image = np.zeros((n, n), dtype=np.float32)
    image[n // 2, n // 2] = 1.0
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)[:, None]
    sinogram = DynamicTomography(angles, (n, n)).forward(torch.from_numpy(np.repeat(image[None], 24, axis=0)))
    assert torch.all(torch.argmax(sinogram[:, 0], dim=-1) == n // 2)
    # and it is symmetric about that bin
    assert torch.allclose(sinogram[:, 0], torch.flip(sinogram[:, 0], dims=[-1]), atol=1e-6)


def test_off_centre_point_follows_the_astra_sinusoid():
    """A blob at (x0, y0) (x right, y up) projects to s = x0 cos(theta) + y0 sin(theta)."""
    n, x0, y0 = 33, 6.0, -4.0
    blob = _smooth_blob(n, x0, y0, sigma=1.5)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    sinogram = DynamicTomography(angles[:, None], (n, n)).forward(torch.from_numpy(np.repeat(blob[None], 24, axis=0)))
    profiles = sinogram[:, 0].double().numpy()
    centroid = profiles @ (np.arange(n) - (n - 1) / 2) / profiles.sum(axis=1)
    assert np.max(np.abs(centroid - (x0 * np.cos(angles) + y0 * np.sin(angles)))) < 0.05


# -- tomography: other geometries ----------------------------------------------------------------


def test_fan_beam_forward_equals_astra_fanflat_projection():
    import astra

    n, n_detectors = 24, 40
    rng = np.random.default_rng(3)
    images = (rng.uniform(0, 1, size=(3, n, n)) * disk_mask(n)).astype(np.float32)
    angles = _angles(3, 2, seed=4) * 2
    geometry = {"geometry": "fan", "source_origin": 50.0, "origin_detector": 25.0, "detector_spacing": 1.25}
    operator = DynamicTomography(angles, (n, n), n_detectors=n_detectors, **geometry)
    sinogram = operator.forward(torch.from_numpy(images)).numpy()
    vol_geom = astra.create_vol_geom(n, n)
    for p in range(3):
        proj_geom = astra.create_proj_geom("fanflat", 1.25, n_detectors, angles[p], 50.0, 25.0)
        projector = astra.create_projector("line_fanflat", proj_geom, vol_geom)
        try:
            sino_id, expected = astra.create_sino(images[p], projector)
            astra.data2d.delete(sino_id)
        finally:
            astra.projector.delete(projector)
        assert np.allclose(sinogram[p], expected, rtol=1e-5, atol=1e-5 * expected.max())


@pytest.mark.parametrize("geometry", [{}, {"geometry": "fan", "source_origin": 40.0, "origin_detector": 20.0}])
def test_an_integer_axis_offset_relabels_the_detector_bins(geometry):
    """Moving the detector by k whole bins measures the same rays, k bins further along."""
    n, shift = 24, 3
    rng = np.random.default_rng(8)
    images = torch.from_numpy((rng.uniform(0, 1, size=(4, n, n)) * disk_mask(n)).astype(np.float32))
    angles = _angles(4, 2, seed=1) * 2
    centred = DynamicTomography(angles, (n, n), n_detectors=48, **geometry).forward(images)
    moved = DynamicTomography(angles, (n, n), n_detectors=48, center_offset=shift, **geometry).forward(images)
    assert torch.allclose(moved[..., shift:], centred[..., :-shift], rtol=1e-5, atol=1e-5 * float(centred.max()))


@pytest.mark.parametrize("geometry", [{}, {"geometry": "fan", "source_origin": 60.0, "origin_detector": 30.0}])
@pytest.mark.parametrize("offset", [0.0, 3.0, -4.5])
def test_the_rotation_axis_projects_center_offset_bins_from_the_detector_centre(geometry, offset):
    n, n_detectors = 33, 41  # odd: pixel 16 is on the rotation axis
    image = np.zeros((n, n), dtype=np.float32)
    image[n // 2, n // 2] = 1.0
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)[:, None]
    operator = DynamicTomography(angles, (n, n), n_detectors=n_detectors, center_offset=offset, **geometry)
    profiles = operator.forward(torch.from_numpy(np.repeat(image[None], 12, axis=0)))[:, 0].double().numpy()
    centroid = profiles @ np.arange(n_detectors) / profiles.sum(axis=1)
    assert np.allclose(centroid.mean(), (n_detectors - 1) / 2 + offset, atol=1e-6)


def test_fan_beam_magnifies_an_off_axis_point():
    """A point at x0 on the detector side of the axis at angle 0 lands at x0 * SD / (SO + y-depth)."""
    n, so, od = 33, 60.0, 30.0
    image = np.zeros((n, n), dtype=np.float32)
    image[n // 2, n // 2 + 8] = 1.0  # x0 = 8, y0 = 0
    operator = DynamicTomography(np.zeros((1, 1)), (n, n), n_detectors=61, geometry="fan", source_origin=so, origin_detector=od)
    profile = operator.forward(torch.from_numpy(image[None]))[0, 0].double().numpy()
    centroid = profile @ (np.arange(61) - 30) / profile.sum()
    assert centroid == pytest.approx(8 * (so + od) / so, abs=0.05)


# -- MRI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 16), (13, 16), (12, 9)])
def test_mri_forward_is_the_masked_centred_orthonormal_fft(shape):
    maps = _coil_maps(2, shape)
    mask = _mask(2, shape)
    images = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    operator = DynamicMRI(mask, maps)
    kspace = operator.zero_filled(operator.forward(torch.from_numpy(images))).numpy()
    coil_images = maps[None] * images[:, None]
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    assert np.allclose(kspace, expected * mask[:, None], atol=1e-5)
    # Fully sampled with normalised maps, the adjoint inverts the forward exactly.
    full = DynamicMRI(np.ones((2, *shape), dtype=bool), maps)
    roundtrip = full.adjoint(full.forward(torch.from_numpy(images)))
    assert torch.allclose(roundtrip, torch.from_numpy(images), atol=1e-5)
    # A conjugate view is accepted by the adjoint like any other tensor.
    y = full.forward(torch.from_numpy(images))
    assert torch.allclose(full.adjoint(torch.conj(y)), full.adjoint(y.conj().resolve_conj()))


# -- what an operator tells the solvers about its modality -------------------------------------


@pytest.mark.parametrize("shape", [(12, 16), (13, 16), (12, 9)])
def test_kspace_normal_weights_are_the_normal_operator_of_single_coil_real_mri(shape):
    operator = DynamicMRI(_mask(3, shape))
    weights = operator.kspace_normal_weights()
    assert weights.shape == (3, *shape) and weights.dtype == torch.float32
    images = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    from imaging.operators import fft2c, ifft2c

    diagonal = ifft2c(weights * fft2c(images.to(torch.complex64)))
    assert torch.allclose(diagonal.imag, torch.zeros(()), atol=1e-5)
    assert torch.allclose(diagonal.real, operator.normal(images), atol=1e-5)


def test_kspace_normal_weights_are_none_where_the_normal_operator_is_no_kspace_diagonal():
    shape = (12, 16)
    assert DynamicMRI(_mask(2, shape), _coil_maps(2, shape)).kspace_normal_weights() is None
    assert DynamicMRI(_mask(2, shape), _coil_maps(2, shape), complex_image=True).kspace_normal_weights() is None
    assert DynamicTomography(_angles(2, 1), (8, 8)).kspace_normal_weights() is None


@pytest.mark.parametrize("shape", [(12, 16), (13, 16)])
def test_kspace_normal_weights_of_single_coil_complex_mri_are_the_mask(shape):
    operator = DynamicMRI(_mask(3, shape), complex_image=True)
    weights = operator.kspace_normal_weights()
    np.testing.assert_array_equal(weights.numpy(), _mask(3, shape).astype(np.float32))
    images = operator.random_domain(torch.Generator().manual_seed(2))
    diagonal = ifft2c(weights * fft2c(images))
    assert torch.allclose(diagonal, operator.normal(images), atol=1e-5)


def test_support_mask_initialisations_and_domain_of_each_operator():
    tomography = DynamicTomography(_angles(2, 1), (8, 8))
    assert torch.equal(tomography.support_mask(), torch.from_numpy(disk_mask(8).astype(np.float32)))
    assert torch.all(DynamicTomography(_angles(2, 1), (8, 8), support="square").support_mask() == 1)
    assert DynamicMRI(_mask(2, (8, 8))).support_mask() is None
    assert not tomography.is_complex_domain and not DynamicMRI(_mask(2, (8, 8))).is_complex_domain
    assert DynamicMRI(_mask(2, (8, 8)), complex_image=True).is_complex_domain
    from imaging.solvers.psm import INITIALISATIONS

    for cls in (DynamicTomography, DynamicMRI):
        assert cls.initialisations and set(cls.initialisations) <= set(INITIALISATIONS)
    assert DynamicTomography.costly_to_build and not DynamicMRI.costly_to_build


def test_measurements_build_the_operator_of_their_modality():
    from imaging.simulate import simulate

    for phantom, cls in (("walnut", DynamicTomography), ("cardiac", DynamicMRI)):
        m = simulate(phantom, frames=4, size=16)
        assert m.operator_class is cls
        operator = m.operator()
        assert type(operator) is cls and operator.measured(m.data).shape == operator.range_shape


def test_operator_of_selected_frames_is_those_frames_of_the_operator():
    from imaging.measurements import MeasurementError
    from imaging.simulate import simulate

    for m in (simulate("walnut", frames=5, size=16, views_per_frame=2), simulate("cardiac", frames=5, size=16, coils=2)):
        images = torch.randn(5, 16, 16, generator=torch.Generator().manual_seed(3))
        chosen = m.select_frames([3, 0])
        assert chosen.n_frames == 2 and np.array_equal(chosen.ground_truth, m.ground_truth[[3, 0]])
        expected = m.operator().forward(images)[[3, 0]]
        assert torch.allclose(chosen.operator().forward(images[[3, 0]]), expected, atol=1e-6)
        with pytest.raises(MeasurementError, match=r"\[0, 5\)"):
            m.select_frames([5])
        with pytest.raises(MeasurementError, match="non-empty"):
            m.select_frames([])


def test_frame_subset_of_td_dip_is_a_deprecated_alias():
    from imaging.simulate import simulate
    from imaging.solvers import td_dip

    m = simulate("walnut", frames=4, size=16)
    with pytest.warns(DeprecationWarning, match="Measurements.select_frames"):
        subset = td_dip.frame_subset(m, [1])
    assert np.array_equal(subset.sinogram, m.sinogram[[1]])


# -- errors -------------------------------------------------------------------------------------


def test_shape_and_dtype_errors():
    tomo = DynamicTomography(_angles(2, 3), (16, 16))
    with pytest.raises(ValueError, match=r"forward expects a tensor of shape \(2, 16, 16\), got \(2, 16, 15\)"):
        tomo.forward(torch.zeros(2, 16, 15))
    with pytest.raises(ValueError, match=r"adjoint expects a tensor of shape \(2, 3, 16\)"):
        tomo.adjoint(torch.zeros(2, 16))
    # Other real dtypes are accepted and computed in float32.
    x = torch.rand(2, 16, 16, dtype=torch.float64)
    assert tomo.forward(x).dtype == torch.float32
    assert torch.equal(tomo.forward(x), tomo.forward(x.float()))

    mri = DynamicMRI(_point_mask(2, (8, 8)))
    with pytest.raises(ValueError, match="takes real images"):
        mri.forward(torch.zeros(2, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"adjoint expects a tensor of shape \(2, 1, 8, 8\)"):
        mri.adjoint(torch.zeros(2, 8, 8, dtype=torch.complex64))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DynamicTomography(np.full((2, 1), np.nan), (8, 8)), "NaN"),
        (lambda: DynamicTomography(np.zeros((2, 1, 1)), (8, 8)), r"shape \(P,\) or \(P, V\)"),
        (lambda: DynamicTomography(np.zeros(2), (8, 9)), r"image_shape must be \(N, N\)"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), projector="cuda"), "projector must be one of"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), support="circle"), "support must be one of"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), n_detectors=0), "n_detectors must be positive"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), detector_spacing=0), "detector_spacing must be a positive"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), geometry="cone"), "geometry must be one of parallel, fan"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), geometry="fan"), "needs source_origin and origin_detector"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), source_origin=9.0), "describe a fan beam"),
        (lambda: DynamicTomography(np.zeros(2), (8, 8), center_offset=np.inf), "center_offset must be a finite"),
        (
            lambda: DynamicTomography(np.zeros(2), (8, 8), geometry="fan", source_origin=5.0, origin_detector=5.0),
            "source inside the 8 x 8 reconstruction grid",
        ),
        (
            lambda: DynamicTomography(
                np.zeros(2), (8, 8), projector="linear", geometry="fan", source_origin=20.0, origin_detector=5.0
            ),
            "no CPU 'linear' projector for fan-beam",
        ),
        (
            lambda: DynamicTomography(
                np.zeros(2), (8, 8), projector="strip", center_offset=1.0, geometry="fan", source_origin=20.0,
                origin_detector=5.0,
            ),
            "'strip_fanflat' projector does not take a rotation-axis offset",
        ),
        (lambda: DynamicMRI(np.ones((8, 8), dtype=bool)), r"mask must have shape \(P, H, W\)"),
        (lambda: DynamicMRI(np.full((1, 8, 8), 2)), "mask must be boolean"),
        (
            lambda: DynamicMRI(np.ones((1, 8, 8), dtype=bool), np.ones((2, 8, 7))),
            r"coil_maps must have shape \(C, 8, 8\)",
        ),
        (lambda: DynamicMRI(np.ones((1, 8, 8), dtype=bool), np.full((2, 8, 8), np.nan)), "NaN"),
    ],
)
def test_construction_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "make",
    [
        lambda: DynamicTomography(np.zeros(2), (8, 8), device="cuda"),
        lambda: DynamicMRI(_mask(1, (8, 8)), device="cuda"),
    ],
    ids=["tomography", "mri"],
)
def test_cuda_without_a_gpu_is_a_clear_error(make):
    with pytest.raises(ValueError, match="device 'cuda' was requested but PyTorch sees no CUDA GPU"):
        make()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "case", ["tomography", "tomography-matrix-free", *(f"tomography-{name}" for name in GEOMETRY_CASES), "mri"]
)
def test_cuda_operators_are_adjoint_and_match_the_cpu(case):
    if case.startswith("tomography"):
        angles = _angles(4, 2)
        name = case.partition("-")[2]
        backend = "matrix-free" if name == "matrix-free" else "auto"
        geometry = GEOMETRY_CASES.get(name, {})
        cpu, gpu = (
            DynamicTomography(angles, (33, 33), n_detectors=40, device=d, projector_backend=backend, **geometry)
            for d in ("cpu", "cuda")
        )
    else:
        mask, maps = _mask(4, (16, 16)), _coil_maps(3, (16, 16))
        cpu, gpu = (DynamicMRI(mask, maps, device=d) for d in ("cpu", "cuda"))
    assert gpu.adjointness_error() <= 1e-5
    gen = torch.Generator().manual_seed(0)
    x, y = cpu.random_domain(gen), cpu.random_range(gen)
    assert torch.allclose(gpu.forward(x.cuda()).cpu(), cpu.forward(x), rtol=1e-4, atol=1e-4)
    assert torch.allclose(gpu.adjoint(y.cuda()).cpu(), cpu.adjoint(y), rtol=1e-4, atol=1e-4)
