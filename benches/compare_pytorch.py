"""Speed of torchlift relative to PyTorch eager (and, with --anchors, ONNX
Runtime and OpenVINO), measured in the same run.

    python benches/compare_pytorch.py [--threads N] [--iters N]
        [--backends jit,interp] [--anchors ort,openvino] MODEL.pt2...

ONNX Runtime runs the `torch.onnx.export` of the same exported program;
OpenVINO compiles the `ExportedProgram` through `openvino.convert_model`.
Both get the same thread count.

For each archive: PyTorch eager (`torch.export.load(...).module()`) on the
archive's sample inputs, then `torchlift bench` with each backend on the same
inputs and thread count. Prints median times and the ratio
torchlift / PyTorch (below 1 is faster than PyTorch). Needs torch; uses
`target/release/torchlift` (build it first with `cargo build --release`).
"""
import argparse
import os
import re
import statistics
import subprocess
import time

import torch


def torch_median_ms(path, threads, iters, warmup=3):
    torch.set_num_threads(threads)
    ep = torch.export.load(path)
    args, kwargs = ep.example_inputs
    m = ep.module()
    times = []
    with torch.no_grad():
        for i in range(warmup + iters):
            t = time.perf_counter()
            m(*args, **kwargs)
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def median_ms(fn, iters, warmup=3):
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def ort_median_ms(path, threads, iters):
    import tempfile

    import onnxruntime as ort

    ep = torch.export.load(path)
    args, kwargs = ep.example_inputs
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "model.onnx")
        torch.onnx.export(ep, args, f, kwargs=kwargs, dynamo=True, verbose=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        feed = {n: a.numpy() for n, a in zip(names, args)}
        return median_ms(lambda: sess.run(None, feed), iters)


def openvino_median_ms(path, threads, iters):
    import openvino as ov

    ep = torch.export.load(path)
    args, _ = ep.example_inputs
    model = ov.convert_model(ep)
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
    req = compiled.create_infer_request()
    feed = [a.numpy() for a in args]
    return median_ms(lambda: req.infer(feed), iters)


def torchlift_median_ms(binary, path, backend, threads, iters):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [binary, "bench", path, "--backend", backend, "--iters", str(iters)],
        capture_output=True, text=True, env=env,
    )
    if out.returncode != 0:
        return None, out.stderr.strip()
    m = re.search(r"run_median=([0-9.]+)ms", out.stdout)
    return float(m.group(1)), out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--binary", default="target/release/torchlift")
    ap.add_argument("--backends", default="jit")
    ap.add_argument("--anchors", default="")
    a = ap.parse_args()
    print(f"threads={a.threads} iters={a.iters} (batch: the archive's sample inputs)")
    for path in a.models:
        t = torch_median_ms(path, a.threads, a.iters)
        row = [f"{path}: torch={t:.3f}ms"]
        for name in [x for x in a.anchors.split(",") if x]:
            fn = {"ort": ort_median_ms, "openvino": openvino_median_ms}[name]
            try:
                ms = fn(path, a.threads, a.iters)
                row.append(f"{name}={ms:.3f}ms")
            except Exception as e:  # noqa: BLE001 - report and go on
                row.append(f"{name}=failed ({type(e).__name__})")
        for backend in a.backends.split(","):
            ms, info = torchlift_median_ms(a.binary, path, backend, a.threads, a.iters)
            row.append(f"{backend}={ms:.3f}ms (x{ms / t:.2f})" if ms is not None else f"{backend}=refused")
        print("  ".join(row))


if __name__ == "__main__":
    main()
