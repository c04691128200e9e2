"""Fuzzing the command line with mutated files (issue 14, "Done when").

Valid measurement (``.npz``, ``.h5``), reconstruction and checkpoint files are mutated
with a seeded generator: truncation, flipped bytes, rewritten ``.npy`` header fields
(shape, dtype, order), other dtypes, shapes and values, zip compression methods and
flags, HDF5 filters, chunking, fill values, links and groups, tampered checkpoint
payloads. Every mutated file goes through the command (``reconstruct``, ``evaluate``,
``reconstruct --resume``) that reads it, and the outcome must be either success or exit
status 2 with one error line on stderr: never a traceback, never a hang, never a memory
blow-up, never a changed input file.

The cases run in one child process (this file run as a script) that calls
``imaging.cli.main`` for each case, with

- a watchdog per case (``faulthandler.dump_traceback_later(..., exit=True)``): a hang
  kills the child, and the parent names the case that was running;
- ``RLIMIT_AS`` (``ulimit -v``) 1.5 GiB above the child's footprint after its imports,
  and ``IMAGING_MEMORY_LIMIT`` well below that: every size check refuses at the lower
  limit, so a ``MemoryError`` ("out of memory") means a missing check and fails the test;
- its peak resident memory reported back and bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

SEED = 20241
CASE_TIMEOUT_S = 20
#: Memory the child may allocate beyond its footprint after imports (RLIMIT_AS).
ADDRESS_SPACE_MARGIN = 1536 * 2**20
#: The memory the toolkit believes it has: every read and run is checked against this.
MEMORY_LIMIT = "256MiB"
#: Peak resident memory of the whole fuzz run above the child's baseline after imports.
PEAK_RSS_MARGIN = 400 * 2**20

N_CASES = {"npz": 160, "h5": 80, "reconstruction": 50, "checkpoint": 60}

SMALL = ["--set", "order=3", "--set", "knots=4"]


# -- valid files ---------------------------------------------------------------------------------


def base_files(folder: Path) -> dict[str, Path]:
    """The valid files every mutation starts from (tiny: 8 frames of 16 x 16)."""
    import imaging
    from imaging.simulate import simulate

    tomography = simulate("walnut", frames=8, size=16, seed=4)
    mri = simulate("cardiac", frames=4, size=8, modality="mri", lines_per_frame=4, center_lines=2, coils=2, seed=4)
    files = {
        "npz": imaging.save_measurements(folder / "tomography.npz", tomography),
        "h5": imaging.save_measurements(folder / "mri.h5", mri),
        "mri_npz": imaging.save_measurements(folder / "mri.npz", mri),
    }
    result = imaging.reconstruct(tomography, "fbp-window")
    files["reconstruction"] = imaging.save_reconstruction(folder / "fbp.npz", result)
    checkpoint = folder / "run.ckpt"
    imaging.reconstruct(tomography, "red-psm", order=3, knots=4, max_iter=1, checkpoint=checkpoint)
    files["checkpoint"] = checkpoint
    return files


# -- mutations -------------------------------------------------------------------------------------

DTYPES = ["<f4", "<f8", ">f4", "<f2", "|i1", "<u2", "<i8", "<c8", "<c16", "|b1", "<U12", "|S3", "|O", "|V8",
          "<M8[s]", "[('a', '<f4')]"]
SHAPES = [(), (0,), (1,), (3,), (10**12,), (2**31, 2**31), (2**62, 4), (-1, 3), (0, 0, 0), (8, 1, 10**7)]


def pick(rng, options):
    """One of ``options`` (any objects, unlike ``Generator.choice``)."""
    options = list(options)
    return options[int(rng.integers(len(options)))]


def npz_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as handle:
        return {name: handle[name] for name in handle.files}


def save_npz(arrays: dict, compressed=False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def truncate(rng, data: bytes) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def flip_bytes(rng, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        out[int(rng.integers(0, len(out)))] = int(rng.integers(0, 256))
    return bytes(out)


def rewrite_npy_header(rng, data: bytes) -> bytes:
    """A member's header gets another shape, dtype or order; its data bytes stay."""
    members = npz_members(data)
    name = str(pick(rng, sorted(members)))
    handle = io.BytesIO(members[name])
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(handle)
    payload = members[name][handle.tell():]
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    field = pick(rng, ["shape", "descr", "fortran_order", "text"])
    if field == "shape":
        header["shape"] = SHAPES[int(rng.integers(len(SHAPES)))] if rng.random() < 0.6 else tuple(
            int(s) * int(pick(rng, [0, 2, 1000])) for s in shape)
    elif field == "descr":
        descr = DTYPES[int(rng.integers(len(DTYPES)))]
        header["descr"] = eval(descr) if descr.startswith("[") else descr  # a structured dtype's list form
    elif field == "fortran_order":
        header["fortran_order"] = not fortran
    out = io.BytesIO()
    if field == "text":  # a header that is not a dictionary literal
        text = pick(rng, [b"{'descr': '<f4', 'shape': (3,)}", b"__import__('os')", b"{" * 5000, b"\xff\xfe"])
        body = text + b" " * (63 - (len(text) + 10) % 64) + b"\n"
        out.write(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body)
    else:
        try:
            np.lib.format.write_array_header_1_0(out, header)
        except ValueError:  # a header too long for version 1.0
            np.lib.format.write_array_header_2_0(out, header)
    members[name] = out.getvalue() + payload
    return write_zip(members)


def change_array(rng, data: bytes) -> bytes:
    """Another dtype, shape or value for one array, saved properly."""
    arrays = load_npz(data)
    name = str(pick(rng, sorted(arrays)))
    value = arrays[name]
    kind = pick(rng, ["dtype", "shape", "value", "drop", "extra"])
    if kind == "dtype":
        target = pick(rng, ["int8", "uint16", "float16", "float64", "complex128", "bool", "str", "int64"])
        value = value.astype(str) if target == "str" else value.astype(target)
    elif kind == "shape":
        value = pick(rng, [
            lambda v: v[None], lambda v: v.reshape(-1), lambda v: v[..., :1], lambda v: v[:0],
            lambda v: np.repeat(v, 2, axis=0) if v.ndim else v, lambda v: v.T, lambda v: np.asarray(v).sum(),
        ])(value)
    elif kind == "value" and value.dtype.kind in "fc":
        value = value.copy()
        value.flat[int(rng.integers(max(1, value.size)))] = pick(rng, [np.nan, np.inf, -np.inf, 1e300, -1e38, 0.0])
    elif kind == "value" and name == "image_shape":
        value = np.array(pick(rng, [[0, 0], [2**40, 2**40], [-16, -16], [16, 16, 16], [16], [10**9, 10**9]]))
    elif kind == "value":
        value = np.array(pick(rng, ["ultrasound", "", "tomography" * 100, "mri"]))
    elif kind == "drop":
        del arrays[name]
        return save_npz(arrays)
    else:
        arrays[str(pick(rng, ["geometry", "notes", "payload"]))] = rng.random((4, 4))
    arrays[name] = value
    return save_npz(arrays, compressed=bool(rng.random() < 0.3))


def zip_flags(rng, data: bytes) -> bytes:
    """Compression method, encryption flag or declared sizes of the members changed in place."""
    if rng.random() < 0.5:
        data = write_zip(npz_members(data), zipfile.ZIP_DEFLATED)
    out = bytearray(data)
    field = pick(rng, ["method", "flags", "sizes"])
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            if rng.random() < 0.7:
                if field == "method":
                    method = int(pick(rng, [0, 8, 12, 14, 99]))
                    out[start + offset + 2 : start + offset + 4] = method.to_bytes(2, "little")
                elif field == "flags":
                    out[start + offset : start + offset + 2] = int(pick(rng, [1, 8, 0x41])).to_bytes(2, "little")
                else:  # the uncompressed size after the CRC: local header +22, central directory +24
                    position = start + (22 if signature == b"PK\x03\x04" else 24)
                    out[position : position + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
            start += 4
    return bytes(out)


NPZ_MUTATIONS = [truncate, flip_bytes, rewrite_npy_header, rewrite_npy_header, change_array, change_array, zip_flags]


def mutate_h5(rng, source: Path, target: Path) -> None:
    """Rewrite an HDF5 measurement file with one dataset changed (or its bytes damaged)."""
    import h5py

    kind = pick(rng, ["bytes", "dataset", "dataset", "structure"])
    if kind == "bytes":
        data = source.read_bytes()
        target.write_bytes(truncate(rng, data) if rng.random() < 0.5 else flip_bytes(rng, data))
        return
    with h5py.File(source, "r") as handle:
        arrays = {name: handle[name][()] for name in handle}
    name = str(pick(rng, sorted(arrays)))
    with h5py.File(target, "w") as handle:
        for key, value in arrays.items():
            if key != name:
                handle.create_dataset(key, data=value)
        value = np.asarray(arrays[name])
        if kind == "structure":
            change = pick(rng, ["group", "soft", "external", "string", "fixed-string", "vlen"])
            if change == "group":
                handle.create_group(name)
            elif change == "soft":
                handle[name] = h5py.SoftLink("/nowhere")
            elif change == "external":
                handle[name] = h5py.ExternalLink("/etc/hostname", "/x")
            elif change == "string":
                handle.create_dataset(name, data="text", dtype=h5py.string_dtype())
            elif change == "fixed-string":
                handle.create_dataset(name, shape=(), dtype=f"S{int(pick(rng, [3, 10**8, 2**31]))}")
            else:
                handle.create_dataset(name, (2,), dtype=h5py.vlen_dtype(np.int32))
            return
        if value.dtype.kind in "OS" or value.ndim == 0:
            handle.create_dataset(name, data=value)
            return
        change = pick(rng, ["filters", "fill", "dtype", "shape"])
        if change == "filters":
            handle.create_dataset(name, data=value, compression=pick(rng, ["gzip", "lzf"]), shuffle=True,
                                  chunks=tuple(1 for _ in value.shape))
        elif change == "fill":  # declared large, partly written: the rest would be fill values
            shape = tuple(int(s) * int(pick(rng, [1, 64, 4096])) for s in value.shape)
            dataset = handle.create_dataset(name, shape=shape, dtype=value.dtype, chunks=True, fillvalue=1)
            dataset[tuple(slice(0, s) for s in value.shape)] = value
        elif change == "dtype":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # complex to real, overflow to float16: intended
                changed = value.astype(pick(rng, ["int8", "float16", "float64", "complex128"]))
            handle.create_dataset(name, data=changed)
        else:
            handle.create_dataset(name, data=value.reshape(-1) if rng.random() < 0.5 else value[..., :1])


def mutate_reconstruction(rng, data: bytes) -> bytes:
    kind = pick(rng, ["npz", "json", "json"])
    if kind == "npz":
        return NPZ_MUTATIONS[int(rng.integers(len(NPZ_MUTATIONS)))](rng, data)
    arrays = load_npz(data)
    key = str(pick(rng, ["params", "history", "method", "elapsed_seconds"]))
    arrays[key] = np.array(pick(rng, ["[" * 50_000 + "]" * 50_000, "NaN", "{not json", "[1, 2]", '{"a": 1e999}', "",
                                       "\x00" * 10]))
    return save_npz(arrays)


def mutate_checkpoint(rng, data: bytes) -> bytes:
    import torch

    if rng.random() < 0.3:
        return truncate(rng, data) if rng.random() < 0.5 else flip_bytes(rng, data)
    payload = torch.load(io.BytesIO(data), weights_only=True)
    state = payload["solver"]
    change = pick(rng, ["drop", "type", "tensor", "nan", "rng", "iteration", "history", "payload"])
    if change == "drop":
        target = payload if rng.random() < 0.5 else state
        target.pop(str(pick(rng, sorted(target))))
    elif change == "type":
        payload[str(pick(rng, sorted(payload)))] = pick(rng, [None, "text", 3, 2.5, [1, 2], {"a": 1}])
    elif change == "tensor":
        key = str(pick(rng, sorted(k for k, v in state.items() if isinstance(v, torch.Tensor))))
        shape = tuple(state[key].shape)
        new_shape = pick(rng, [shape[:-1], (*shape, 2), tuple(s + 1 for s in shape), (0,) * len(shape), ()])
        state[key] = torch.zeros(tuple(int(s) for s in new_shape), dtype=pick(rng, [torch.float32, torch.float64,
                                                                                     torch.int64, torch.complex64]))
    elif change == "nan":
        key = str(pick(rng, sorted(k for k, v in state.items() if isinstance(v, (torch.Tensor, float)))))
        if isinstance(state[key], float):
            state[key] = float("nan")
        else:
            state[key].view(-1)[0] = float(pick(rng, [np.nan, np.inf]))
    elif change == "rng":
        payload["torch_rng"] = pick(rng, [torch.zeros(3, dtype=torch.uint8), torch.zeros(5056),
                                           torch.zeros(5056, dtype=torch.uint8)])
    elif change == "iteration":
        state["iteration"] = int(pick(rng, [-1, 0, 5, 10**12]))
    elif change == "history":
        payload["history"] = str(pick(rng, ["[", "[{}]", "{}", "[1]", "[" * 100_000]))
    else:
        payload = pick(rng, [[payload], "a string", {"format": 2}])
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def applied(mutation, rng, data: bytes) -> bytes:
    """``mutation(rng, data)``, or flipped bytes where the mutation does not apply (e.g. a
    numeric dtype for a text entry)."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lossy casts are what the mutations want
            return mutation(rng, data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return flip_bytes(rng, data)


def make_cases(folder: Path) -> list[dict]:
    """Write the mutated files; each case: the command line and the input files it must leave unchanged."""
    files = base_files(folder)
    rng = np.random.default_rng(SEED)
    cases = []

    def add(path, args, inputs):
        case_id = f"{Path(path).name} ({len(cases)})"
        cases.append({"id": case_id, "args": [str(a) for a in args], "inputs": [str(p) for p in inputs],
                      "digests": {str(p): digest(p) for p in inputs}})

    for index in range(N_CASES["npz"]):
        source = files["npz"] if index % 3 else files["mri_npz"]
        mutation = NPZ_MUTATIONS[index % len(NPZ_MUTATIONS)]
        path = folder / f"npz-{index:03d}.npz"
        path.write_bytes(applied(mutation, rng, source.read_bytes()))
        method = ["--method", "fbp-window"] if index % 3 else ["--method", "psm", *SMALL, "--max-iter", 1]
        add(path, ["reconstruct", path, *method, "-o", folder / f"out-npz-{index:03d}.npz"], [path])
    for index in range(N_CASES["h5"]):
        path = folder / f"h5-{index:03d}.h5"
        try:
            mutate_h5(rng, files["h5"], path)
        except (ValueError, TypeError, KeyError, OSError):  # h5py cannot store that change
            path.write_bytes(flip_bytes(rng, files["h5"].read_bytes()))
        add(path, ["reconstruct", path, "--method", "psm", *SMALL, "--max-iter", 1,
                         "-o", folder / f"out-h5-{index:03d}.npz"], [path])
    for index in range(N_CASES["reconstruction"]):
        path = folder / f"reconstruction-{index:03d}.npz"
        path.write_bytes(applied(mutate_reconstruction, rng, files["reconstruction"].read_bytes()))
        add(path, ["evaluate", path, "--reference", files["npz"],
                                     "--json", folder / f"metrics-{index:03d}.json"], [path, files["npz"]])
    for index in range(N_CASES["checkpoint"]):
        output = folder / f"out-ckpt-{index:03d}.npz"
        checkpoint = Path(f"{output}.ckpt")
        checkpoint.write_bytes(applied(mutate_checkpoint, rng, files["checkpoint"].read_bytes()))
        add(checkpoint, ["reconstruct", files["npz"], "--method", "red-psm", *SMALL, "--max-iter", 2,
                                       "--resume", "-o", output], [files["npz"]])
    return cases


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the child: every case in process, with a watchdog -----------------------------------------------


def drive(manifest: Path, results: Path) -> None:
    """Run the cases of ``manifest``, appending one JSON line per case to ``results``."""
    import contextlib
    import faulthandler
    import resource
    import traceback

    import torch

    from imaging.cli import main

    torch.set_num_threads(1)
    cases = json.loads(manifest.read_text())
    status = Path("/proc/self/status").read_text()
    footprint = int(status.split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (footprint + ADDRESS_SPACE_MARGIN, resource.RLIM_INFINITY))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(results, "w") as log:
        for case in cases:
            log.write(json.dumps({"running": case["id"]}) + "\n")
            log.flush()
            faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
            stderr = io.StringIO()
            escaped = None
            try:
                with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                    code = main(case["args"])
            except SystemExit as exit_:  # argparse
                code = exit_.code
            except BaseException:  # noqa: BLE001 - recorded and reported by the test
                code, escaped = None, traceback.format_exc()
            faulthandler.cancel_dump_traceback_later()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            log.write(json.dumps({"id": case["id"], "code": code, "stderr": stderr.getvalue(), "escaped": escaped,
                                  "peak_above_baseline": peak - baseline}) + "\n")
            log.flush()


# -- the test ----------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux features")
def test_mutated_files_give_success_or_one_line_never_a_traceback_hang_or_memory_blowup(tmp_path):
    cases = make_cases(tmp_path)
    manifest, results = tmp_path / "manifest.json", tmp_path / "results.jsonl"
    manifest.write_text(json.dumps(cases))
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "IMAGING_MEMORY_LIMIT": MEMORY_LIMIT, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, __file__, str(manifest), str(results)], env=environment, cwd=tmp_path,
                           capture_output=True, text=True, timeout=CASE_TIMEOUT_S * 4 + 120)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    finished = {line["id"]: line for line in lines if "id" in line}
    running = [line["running"] for line in lines if "running" in line and line["running"] not in finished]
    assert child.returncode == 0 and not running, (
        f"the fuzz child died (status {child.returncode}) while running case {running}: {child.stderr[-3000:]}"
    )
    problems = []
    for case in cases:
        outcome = finished[case["id"]]
        errors = outcome["stderr"].strip().splitlines()
        if outcome["escaped"] or "Traceback" in outcome["stderr"]:
            problems.append(f"{case['id']} {case['args']}: traceback\n{outcome['escaped'] or outcome['stderr']}")
        elif outcome["code"] == 0 and outcome["stderr"].strip():
            problems.append(f"{case['id']} {case['args']}: succeeded with messages: {outcome['stderr']}")
        elif outcome["code"] not in (0, 2):
            problems.append(f"{case['id']} {case['args']}: exit status {outcome['code']}: {outcome['stderr']}")
        elif outcome["code"] == 2 and (len(errors) != 1 or ": error: " not in errors[0]):
            problems.append(f"{case['id']} {case['args']}: expected one error line, got {errors}")
        elif "out of memory" in outcome["stderr"]:
            problems.append(f"{case['id']} {case['args']}: allocated before checking: {errors}")
        for path, before in case["digests"].items():
            if digest(path) != before:
                problems.append(f"{case['id']}: input {path} changed")
    assert problems == [], "\n".join(problems)
    peak = max(outcome["peak_above_baseline"] for outcome in finished.values())
    assert peak < PEAK_RSS_MARGIN, f"peak resident memory {peak / 2**20:.0f} MiB above the child's baseline"
    outcomes = [finished[case["id"]]["code"] for case in cases]
    # The mutations must reach both outcomes: some files still load, most are refused.
    assert 0 in outcomes and outcomes.count(2) > len(cases) // 2


if __name__ == "__main__":
    drive(Path(sys.argv[1]), Path(sys.argv[2]))
