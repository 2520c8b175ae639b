"""Raw PyTorch ceilings on the 27B decode shapes for tools/bench/torch_reference.py: lm_head GEMM,
every linear shape at M = 1 in BF16 and FP8 (torch._scaled_mm), device-to-device copy bandwidth."""
import math

import torch

from torch_common import *  # noqa: F401,F403  (RESULTS, log, record_error, timing helpers)

# ----------------------------------------------------------------------------------------------------------------
# lm_head GEMM for extrapolation
# ----------------------------------------------------------------------------------------------------------------
def part_lm_head(args):
    out = {}
    W = torch.randn(VOCAB, HIDDEN, device="cuda", dtype=torch.bfloat16) * 0.02
    with torch.no_grad():
        for M in (1, 1024, 8192):
            key = f"lm_head_M{M}"
            try:
                x = torch.randn(M, HIDDEN, device="cuda", dtype=torch.bfloat16)
                out[key] = cuda_time(lambda: torch.matmul(x, W.t()), args.reps, 2)
                log(f"{key}: {out[key]['median_ms']:.3f} ms")
                del x
            except Exception as exc:
                record_error(key, exc)
            free_cuda()
    del W
    free_cuda()
    return out


# ----------------------------------------------------------------------------------------------------------------
# part 2: GEMM ceilings at M=1 and copy bandwidth
# ----------------------------------------------------------------------------------------------------------------
GEMM_SHAPES = [  # name, N (out features), K (in features)
    ("in_proj_qkv", 10240, 5120), ("in_proj_z", 6144, 5120), ("out_proj", 5120, 6144),
    ("q_proj", 12288, 5120), ("k_proj/v_proj", 1024, 5120), ("o_proj", 5120, 6144),
    ("gate/up_proj", 17408, 5120), ("down_proj", 5120, 17408), ("lm_head", 248320, 5120),
]


def weight_pool(make, nbytes, min_pool_bytes):
    n = max(1, math.ceil(min_pool_bytes / nbytes))
    base = make()
    return [base] + [base.clone() for _ in range(n - 1)]


def measure_gemm(tag, fn, wbytes, args):
    r = {}
    t = cuda_time_batched(fn, args.gemm_inner, args.reps)
    r[f"{tag}_eager_us"] = t["median_ms"] * 1e3
    try:
        tg = cuda_graph_time(fn, args.gemm_inner, args.reps)
        r[f"{tag}_us"] = tg["median_ms"] * 1e3
        r[f"{tag}_timing"] = "cuda_graph"
    except Exception as exc:
        r[f"{tag}_graph_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        r[f"{tag}_us"] = r[f"{tag}_eager_us"]
        r[f"{tag}_timing"] = "eager (graph capture failed)"
    r[f"{tag}_GBps"] = wbytes / (r[f"{tag}_us"] * 1e-6) / 1e9
    return r


def part_gemm(args):
    out = {"note": ("M=1 activation; weights rotated through a pool of copies totalling >= %d MiB so every call streams "
                    "its weight from HBM (not the 50 MB L2). *_us = per-call time of %d back-to-back calls captured in "
                    "one CUDA graph (no CPU launch overhead; the GPU ceiling), median of %d replays; *_eager_us = the "
                    "same %d calls launched eagerly from python (launch-bound for the small shapes). "
                    "GB/s counts weight bytes only. FP8 = torch._scaled_mm e4m3 x e4m3 -> bf16 with per-row (A) / "
                    "per-col (B) fp32 scales; activation quantisation not included."
                    % (args.pool_mib, args.gemm_inner, args.reps, args.gemm_inner)),
           "shapes": {}}
    fp8_mode = None
    fp8_dtype = getattr(torch, "float8_e4m3fn", None)
    pool_bytes = args.pool_mib * 2**20
    with torch.no_grad():
        for name, N, K in GEMM_SHAPES:
            r = {"N": N, "K": K}
            # ---- BF16
            try:
                wb = N * K * 2
                pool = weight_pool(lambda: torch.randn(N, K, device="cuda", dtype=torch.bfloat16), wb, pool_bytes)
                x = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)
                P = len(pool)
                r.update(measure_gemm("bf16", lambda i: torch.matmul(x, pool[i % P].t()), wb, args))
                r["bf16_pool"] = P
                del pool, x
            except Exception as exc:
                r["bf16_error"] = f"{type(exc).__name__}: {exc}"
                RESULTS["errors"][f"gemm_bf16_{name}"] = r["bf16_error"]
            free_cuda()
            # ---- FP8
            try:
                if fp8_dtype is None:
                    raise RuntimeError("torch.float8_e4m3fn not available")
                wb = N * K
                pool = weight_pool(
                    lambda: (torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.5).to(fp8_dtype), wb, pool_bytes)
                P = len(pool)
                sb_row = torch.rand(1, N, device="cuda", dtype=torch.float32) + 0.5
                candidates = [("rowwise", 1), ("rowwise", 16), ("tensorwise", 1), ("tensorwise", 16)]
                if fp8_mode is not None:
                    candidates = [fp8_mode] + [c for c in candidates if c != fp8_mode]
                done, errs = False, []
                for mode, M in candidates:
                    try:
                        xa = (torch.randn(M, K, device="cuda", dtype=torch.bfloat16) * 0.5).to(fp8_dtype)
                        if mode == "rowwise":
                            sa = torch.rand(M, 1, device="cuda", dtype=torch.float32) + 0.5
                            sb = sb_row
                        else:
                            sa = torch.tensor(1.0, device="cuda", dtype=torch.float32)
                            sb = torch.tensor(1.0, device="cuda", dtype=torch.float32)

                        def f(i, xa=xa, sa=sa, sb=sb):
                            return torch._scaled_mm(xa, pool[i % P].t(), scale_a=sa, scale_b=sb,
                                                    out_dtype=torch.bfloat16)
                        f(0)
                        torch.cuda.synchronize()
                        r.update(measure_gemm("fp8", f, wb, args))
                        r["fp8_mode"] = f"{mode}, M={M}" + (" (M padded to 16)" if M == 16 else "")
                        r["fp8_pool"] = P
                        fp8_mode = (mode, M)
                        done = True
                        break
                    except Exception as exc:
                        errs.append(f"{mode} M={M}: {type(exc).__name__}: {str(exc)[:300]}")
                if errs:
                    r["fp8_failed_attempts"] = errs
                if not done:
                    raise RuntimeError("all _scaled_mm variants failed")
                del pool
            except Exception as exc:
                r["fp8_error"] = f"{type(exc).__name__}: {exc}"
                RESULTS["errors"][f"gemm_fp8_{name}"] = r["fp8_error"]
            free_cuda()
            out["shapes"][name] = r
            log(f"gemm {name:14s} {N:6d}x{K:5d}: bf16 {r.get('bf16_us', float('nan')):8.1f} us "
                f"{r.get('bf16_GBps', float('nan')):7.0f} GB/s | fp8 {r.get('fp8_us', float('nan')):8.1f} us "
                f"{r.get('fp8_GBps', float('nan')):7.0f} GB/s")

    # GEMM-only decode floor (sum of weight GEMMs of one token through 64 layers + lm_head; the tiny in_proj_a/b,
    # norms, conv, recurrence and attention itself are ignored)
    sh = out["shapes"]
    gdn_names = ["in_proj_qkv", "in_proj_z", "out_proj", "gate/up_proj", "gate/up_proj", "down_proj"]
    att_names = ["q_proj", "k_proj/v_proj", "k_proj/v_proj", "o_proj", "gate/up_proj", "gate/up_proj", "down_proj"]
    for dt in ("bf16", "fp8"):
        try:
            g = sum(sh[n][f"{dt}_us"] for n in gdn_names)
            a = sum(sh[n][f"{dt}_us"] for n in att_names)
            total = N_GDN * g + N_ATTN * a + sh["lm_head"][f"{dt}_us"]
            out[f"decode_gemm_floor_{dt}"] = {"gdn_layer_us": g, "attn_layer_us": a, "total_ms": total / 1e3,
                                              "tok_s": 1e6 / total}
        except Exception as exc:
            out[f"decode_gemm_floor_{dt}"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def part_copy(args):
    nbytes = 2**30
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    t = cuda_time(lambda: dst.copy_(src), max(args.reps, 10), 3)
    ms = t["median_ms"]
    out = {"bytes": nbytes, "time": t,
           "GBps_read_plus_write": 2 * nbytes / (ms * 1e-3) / 1e9,
           "GBps_bytes_copied": nbytes / (ms * 1e-3) / 1e9}
    del src, dst
    free_cuda()
    log(f"copy 1 GiB: {ms:.3f} ms = {out['GBps_read_plus_write']:.0f} GB/s (read+write)")
    return out
