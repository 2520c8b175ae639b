"""Shared state and CUDA timing helpers of tools/bench/torch_reference.py (results dict, logging,
event/graph timing)."""
import statistics
import time
import traceback

import torch

HIDDEN = 5120
VOCAB = 248320
N_GDN, N_ATTN = 48, 16

RESULTS = {"errors": {}}
T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


def record_error(key, exc):
    msg = f"{type(exc).__name__}: {exc}"
    RESULTS["errors"][key] = {"error": msg, "traceback": traceback.format_exc()[-3000:]}
    log(f"ERROR in {key}: {msg}")


def stats(ts):
    ts = sorted(ts)
    return {"median_ms": statistics.median(ts), "min_ms": ts[0], "max_ms": ts[-1],
            "mean_ms": sum(ts) / len(ts), "n": len(ts)}


def cuda_time(fn, reps, warmup):
    """Time fn() with cuda events; sync between repetitions; returns stats in ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return stats(ts)


def cuda_time_batched(fn, inner, reps, warmup_calls=20):
    """Time `inner` back-to-back calls fn(i) between one pair of events; per-call stats in ms."""
    for i in range(warmup_calls):
        fn(i)
    torch.cuda.synchronize()
    pairs = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        for i in range(inner):
            fn(i)
        e.record()
        pairs.append((s, e))
    torch.cuda.synchronize()
    return stats([s.elapsed_time(e) / inner for s, e in pairs])


def cuda_graph_time(fn, inner, reps):
    """Capture `inner` calls fn(i) in one CUDA graph (no CPU launch overhead); per-call stats in ms."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            fn(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(inner):
            fn(i)
    g.replay()
    g.replay()
    torch.cuda.synchronize()
    pairs = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        g.replay()
        e.record()
        pairs.append((s, e))
    torch.cuda.synchronize()
    r = stats([s.elapsed_time(e) / inner for s, e in pairs])
    del g
    return r


def free_cuda():
    import gc
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
