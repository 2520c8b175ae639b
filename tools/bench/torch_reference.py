#!/usr/bin/env python3
"""PyTorch / transformers reference numbers for Qwen3.5-27B shapes (random BF16 weights, no downloads).

Run on the GPU machine:
    python3 tools/bench/torch_reference.py [--out PATH]      (default $OUT/torch_reference.json)

Measures
  1. transformers' own Qwen3.5 text decoder layers (one Gated DeltaNet layer, one gated full-attention layer),
     built from a Qwen3_5TextConfig with the exact 27B text shapes, eval + no_grad + BF16 on cuda:
       - prefill T=1024 / 8192 (batch 1): standalone Qwen3_5DecoderLayer forward, cuda events, median.
       - decode of 1 token with 8192 cached tokens (batch 1): a 4-layer Qwen3_5TextModel (3 GDN + 1 attention,
         layer_types [lin, lin, lin, full]) is prefilled with 8192 tokens (its own cache class, use_cache=True),
         then single-token steps are run through the whole model; per-layer GPU time is taken with cuda events
         recorded from forward pre/post hooks on each decoder layer (GDN = mean of the 3 GDN layers).
     Extrapolated 64-layer forward = 48 x GDN layer + 16 x attention layer + lm_head GEMM.
  2. Raw torch GEMM ceilings at M=1 (BF16 torch.matmul, FP8 torch._scaled_mm), and device-to-device copy bandwidth.
Every measurement is wrapped in try/except; errors are recorded in the JSON instead of aborting.
"""
import argparse
import json
import os
import statistics
import sys
import time

# No internet on the GPU machine: never let transformers / hub-kernels try to download anything.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import *  # noqa: E402,F401,F403  (RESULTS, log, record_error, timing helpers)
from torch_gemm import GEMM_SHAPES, part_copy, part_gemm, part_lm_head  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# config / modules
# ----------------------------------------------------------------------------------------------------------------
def import_qwen35():
    import transformers
    from transformers.models.qwen3_5 import modeling_qwen3_5 as mq
    try:
        from transformers.models.qwen3_5.configuration_qwen3_5 import Qwen3_5TextConfig
    except Exception:
        Qwen3_5TextConfig = getattr(transformers, "Qwen3_5TextConfig")
    return transformers, mq, Qwen3_5TextConfig


def make_config(Qwen3_5TextConfig, num_layers=64, layer_types=None):
    if layer_types is None:
        layer_types = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(num_layers)]
    base = dict(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=17408, num_hidden_layers=num_layers,
        num_attention_heads=24, num_key_value_heads=4, head_dim=256, hidden_act="silu",
        linear_num_key_heads=16, linear_num_value_heads=48, linear_key_head_dim=128, linear_value_head_dim=128,
        linear_conv_kernel_dim=4, rms_norm_eps=1e-6, max_position_embeddings=262144, attention_bias=False,
        tie_word_embeddings=False, layer_types=layer_types,
    )
    rope = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
            "mrope_section": [11, 11, 10], "mrope_interleaved": True}
    attempts = [
        lambda: Qwen3_5TextConfig(**base, rope_parameters=dict(rope)),
        lambda: Qwen3_5TextConfig(**base, rope_parameters=dict(rope), partial_rotary_factor=0.25),
        lambda: Qwen3_5TextConfig(**base, rope_theta=1e7, partial_rotary_factor=0.25),
    ]
    last = None
    for a in attempts:
        try:
            cfg = a()
            break
        except Exception as exc:  # try the next spelling of the rope fields
            last = exc
    else:
        raise last
    # SDPA attention (what a default from_pretrained would pick); eager would materialise T x T scores.
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:
        try:
            cfg._attn_implementation_internal = "sdpa"
        except Exception:
            pass
    return cfg


def randomize_(module, std=0.02):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std)
            elif name.endswith("A_log") or name.endswith("dt_bias"):
                pass
            elif p.is_floating_point() and not torch.isfinite(p).all():
                p.zero_()


def build_on_cuda(ctor):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            m = ctor()
    finally:
        torch.set_default_dtype(prev)
    m = m.to(device="cuda", dtype=torch.bfloat16).eval()
    randomize_(m)
    return m


def rope_embeddings(rotary, x, T, start=0):
    pos = torch.arange(start, start + T, device="cuda")
    pos3 = pos.view(1, 1, -1).expand(3, 1, -1)
    try:
        return rotary(x, pos3)
    except Exception:
        return rotary(x, pos.view(1, -1))


def describe_gdn_path(mq, gdn_module):
    info = {}
    import importlib.util
    for mod in ("fla", "causal_conv1d", "kernels", "flash_attn"):
        try:
            info[f"importable_{mod}"] = importlib.util.find_spec(mod) is not None
        except Exception as exc:
            info[f"importable_{mod}"] = f"error: {exc}"
    try:
        from transformers.utils import is_flash_linear_attention_available
        info["is_flash_linear_attention_available"] = bool(is_flash_linear_attention_available())
    except Exception as exc:
        info["is_flash_linear_attention_available"] = f"n/a ({type(exc).__name__})"
    for attr in ("is_fast_path_available",):
        if hasattr(mq, attr):
            info[f"modeling.{attr}"] = bool(getattr(mq, attr))
    fns = {}
    for name in ("chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule", "causal_conv1d_fn",
                 "causal_conv1d_update", "torch_chunk_gated_delta_rule", "torch_recurrent_gated_delta_rule"):
        for owner, label in ((gdn_module, "layer"), (mq, "module")):
            f = getattr(owner, name, None)
            if callable(f):
                fns[f"{label}.{name}"] = f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"
    info["functions"] = fns
    fla = info.get("is_flash_linear_attention_available") is True or info.get("importable_fla") is True
    info["summary"] = ("flash-linear-attention (fla) Triton kernels" if fla else
                       "transformers torch fallback (torch_chunk_gated_delta_rule / torch_recurrent_gated_delta_rule,"
                       " F.conv1d causal conv); fla not importable")
    return info


def top_kernels(fn, n=8):
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for ev in prof.key_averages():
        t = getattr(ev, "self_device_time_total", None)
        if t is None:
            t = getattr(ev, "self_cuda_time_total", 0)
        if t and t > 0:
            rows.append((t, ev.count, ev.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows) or 1
    import re
    pat = re.compile(r"fmha|flash|sdpa|attention|attn|cudnn|mha|softmax", re.I)
    return {"total_kernel_us": total,
            "attention_like_kernels": [{"us": round(t, 1), "calls": c, "name": k[:140]}
                                       for t, c, k in rows if pat.search(k)][:6],
            "n_kernel_names": len(rows),
            "n_launches": sum(r[1] for r in rows),
            "top": [{"us": round(t, 1), "pct": round(100 * t / total, 1), "calls": c, "name": k[:110]}
                    for t, c, k in rows[:n]]}


# ----------------------------------------------------------------------------------------------------------------
# part 1a: standalone decoder layers, prefill
# ----------------------------------------------------------------------------------------------------------------
def part_prefill(mq, cfg, args):
    out = {}
    lin_idx = cfg.layer_types.index("linear_attention")
    full_idx = cfg.layer_types.index("full_attention")
    out["layer_indices"] = {"gdn": lin_idx, "attention": full_idx}
    gdn = build_on_cuda(lambda: mq.Qwen3_5DecoderLayer(cfg, lin_idx))
    att = build_on_cuda(lambda: mq.Qwen3_5DecoderLayer(cfg, full_idx))
    with torch.device("cuda"):
        rotary = mq.Qwen3_5TextRotaryEmbedding(config=cfg)  # keep its fp32 inv_freq buffer
    try:
        out["rotary_dim"] = 2 * int(rotary.inv_freq.numel())
    except Exception:
        pass
    out["params_gdn_layer_M"] = sum(p.numel() for p in gdn.parameters()) / 1e6
    out["params_attn_layer_M"] = sum(p.numel() for p in att.parameters()) / 1e6
    out["attn_implementation"] = str(getattr(cfg, "_attn_implementation", None))
    try:
        RESULTS["gdn_kernel_path"] = describe_gdn_path(mq, gdn.linear_attn)
    except Exception as exc:
        record_error("gdn_kernel_path", exc)

    def run_layer(layer, x, pe):
        return layer(hidden_states=x, position_embeddings=pe, attention_mask=None)

    with torch.no_grad():
        for T in (1024, 8192):
            x = torch.randn(1, T, HIDDEN, device="cuda", dtype=torch.bfloat16)
            pe = rope_embeddings(rotary, x, T)
            # attention layer
            key = f"prefill_T{T}_attn"
            try:
                out[key] = cuda_time(lambda: run_layer(att, x, pe), args.reps, 2)
                log(f"{key}: {out[key]['median_ms']:.3f} ms")
            except Exception as exc:
                record_error(key, exc)
            # GDN layer
            key = f"prefill_T{T}_gdn"
            try:
                if T == 1024:
                    out[key] = cuda_time(lambda: run_layer(gdn, x, pe), args.reps, 2)
                    out[key]["measured_T"] = T
                else:
                    est_s = out.get("prefill_T1024_gdn", {}).get("median_ms", 0) * 8 / 1e3
                    if est_s > args.gdn_8k_limit_s:
                        Tm = 2048
                        xm = x[:, :Tm].contiguous()
                        pem = tuple(p[:, :Tm].contiguous() for p in pe)
                        r = cuda_time(lambda: run_layer(gdn, xm, pem), max(3, args.reps // 2), 1)
                        scale = T / Tm
                        r = {k: (v * scale if k.endswith("_ms") else v) for k, v in r.items()}
                        r["measured_T"] = Tm
                        r["note"] = f"measured at T={Tm}, scaled linearly x{scale:g} to T={T}"
                        out[key] = r
                    else:
                        reps = args.reps if est_s < 1.0 else 3
                        out[key] = cuda_time(lambda: run_layer(gdn, x, pe), reps, 1)
                        out[key]["measured_T"] = T
                log(f"{key}: {out[key]['median_ms']:.3f} ms {out[key].get('note', '')}")
            except Exception as exc:
                record_error(key, exc)
            del x, pe
            free_cuda()

        if args.profile:
            x = torch.randn(1, 1024, HIDDEN, device="cuda", dtype=torch.bfloat16)
            pe = rope_embeddings(rotary, x, 1024)
            for name, layer in (("gdn", gdn), ("attn", att)):
                try:
                    out[f"kernels_prefill_T1024_{name}"] = top_kernels(lambda: run_layer(layer, x, pe))
                except Exception as exc:
                    record_error(f"kernels_prefill_T1024_{name}", exc)
            del x, pe
    del gdn, att, rotary
    free_cuda()
    return out


# ----------------------------------------------------------------------------------------------------------------
# part 1b: decode through a 4-layer model (3 GDN + 1 attention) with the model's own cache
# ----------------------------------------------------------------------------------------------------------------
def _sdpa_cudnn_enabled():
    try:
        return bool(torch.backends.cuda.cudnn_sdp_enabled())
    except Exception:
        return None


def _set_sdpa_cudnn(flag):
    try:
        torch.backends.cuda.enable_cudnn_sdp(flag)
    except Exception:
        pass


def decode_variant(model, types, args, profile):
    """Prefill args.ctx tokens with the model's own cache, then time 1-token steps (hooks give per-layer time)."""
    out = {}
    layers = list(model.layers)
    events = {i: [] for i in range(len(layers))}
    cpu = {i: [] for i in range(len(layers))}
    hooks = []
    for i, layer in enumerate(layers):
        def pre(mod, a, i=i):
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            events[i].append([ev, None])
            cpu[i].append([time.perf_counter(), None])

        def post(mod, a, o, i=i):
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            events[i][-1][1] = ev
            cpu[i][-1][1] = time.perf_counter()
        hooks.append(layer.register_forward_pre_hook(pre))
        hooks.append(layer.register_forward_hook(post))

    def per_layer_ms():
        torch.cuda.synchronize()
        return {i: [s.elapsed_time(e) for s, e in evs] for i, evs in events.items()}

    try:
        with torch.no_grad():
            x = torch.randn(1, args.ctx, HIDDEN, device="cuda", dtype=torch.bfloat16)
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            o = model(inputs_embeds=x, use_cache=True)
            e.record()
            torch.cuda.synchronize()
            cache = o.past_key_values
            out["cache_class"] = f"{type(cache).__module__}.{type(cache).__name__}"
            try:
                out["cache_seq_len_after_prefill"] = int(cache.get_seq_length())
            except Exception as exc:
                out["cache_seq_len_after_prefill"] = f"n/a ({exc})"
            pl = per_layer_ms()
            out["model_prefill_T%d_once" % args.ctx] = {
                "total_ms": s.elapsed_time(e),
                "note": "single cold run (includes cache writes / final-state output); cross-check only",
                "per_layer_ms": {f"{i}:{types[i]}": pl[i][0] for i in pl}}
            del x, o
            for k in events:
                events[k].clear()
                cpu[k].clear()

            step_ms = []
            n_warm, n_meas = 3, args.decode_steps
            for step in range(n_warm + n_meas):
                xt = torch.randn(1, 1, HIDDEN, device="cuda", dtype=torch.bfloat16)
                s = torch.cuda.Event(enable_timing=True)
                e = torch.cuda.Event(enable_timing=True)
                s.record()
                o = model(inputs_embeds=xt, past_key_values=cache, use_cache=True)
                e.record()
                e.synchronize()
                step_ms.append(s.elapsed_time(e))
                cache = o.past_key_values
            pl = per_layer_ms()
            gdn_ms, attn_ms, per_layer = [], [], {}
            for i in range(len(layers)):
                vals = pl[i][n_warm:]
                per_layer[f"{i}:{types[i]}"] = stats(vals)
                per_layer[f"{i}:{types[i]}"]["cpu_wall_median_ms"] = statistics.median(
                    [(b - a) * 1e3 for a, b in cpu[i][n_warm:]])
                (gdn_ms if types[i] == "linear_attention" else attn_ms).extend(vals)
            out["per_layer"] = per_layer
            out["decode_gdn"] = stats(gdn_ms)
            out["decode_attn"] = stats(attn_ms)
            out["decode_model4_total"] = stats(step_ms[n_warm:])
            layer_sum = 3 * out["decode_gdn"]["median_ms"] + out["decode_attn"]["median_ms"]
            out["decode_model_overhead_ms"] = out["decode_model4_total"]["median_ms"] - layer_sum
            try:
                out["cache_seq_len_after_decode"] = int(cache.get_seq_length())
            except Exception:
                pass
            for h in hooks:
                h.remove()
            hooks = []
            if profile:
                try:
                    def one_step():
                        xt = torch.randn(1, 1, HIDDEN, device="cuda", dtype=torch.bfloat16)
                        model(inputs_embeds=xt, past_key_values=cache, use_cache=True)
                    out["kernels_decode_model4_step"] = top_kernels(one_step, n=10)
                except Exception as exc:
                    out["kernels_error"] = f"{type(exc).__name__}: {exc}"
            del cache
    finally:
        for h in hooks:
            h.remove()
    return out


def sdpa_decode_probe(ctx):
    """Plain F.scaled_dot_product_attention, q_len=1, KV length growing by one per call (as in cached decode)."""
    import torch.nn.functional as F
    out = {"note": "q [1,24,1,256], k/v [1,4,L,256] with enable_gqa=True, L = ctx+j (a new L every call) vs "
                   "L fixed; per-call cuda-event ms and CPU wall ms, median over the 10 calls (after 2 warm-up calls)"}
    orig = _sdpa_cudnn_enabled()
    kv = torch.randn(2, 1, 4, ctx + 32, 256, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(1, 24, 1, 256, device="cuda", dtype=torch.bfloat16)
    try:
        for cud in (True, False):
            _set_sdpa_cudnn(cud)
            for mode in ("growing_L", "fixed_L"):
                gpu, cpu_ms = [], []
                for j in range(12):
                    # growing: a length not used before in this process (cuDNN-on and -off use disjoint ranges)
                    L = ctx + (j + (0 if cud else 16) if mode == "growing_L" else 0)
                    k = kv[0, :, :, :L]
                    v = kv[1, :, :, :L]
                    s = torch.cuda.Event(enable_timing=True)
                    e = torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    s.record()
                    F.scaled_dot_product_attention(q, k, v, is_causal=False, enable_gqa=True)
                    e.record()
                    t1 = time.perf_counter()
                    e.synchronize()
                    if j >= 2:
                        gpu.append(s.elapsed_time(e))
                        cpu_ms.append((t1 - t0) * 1e3)
                out[f"cudnn_sdp_{'on' if cud else 'off'}_{mode}"] = {
                    "event_ms": statistics.median(gpu), "cpu_launch_ms": statistics.median(cpu_ms)}
    finally:
        if orig is not None:
            _set_sdpa_cudnn(orig)
    del kv, q
    return out


def part_decode(mq, Qwen3_5TextConfig, args):
    out = {"method": ("Qwen3_5TextModel with num_hidden_layers=4, layer_types=[linear, linear, linear, full], "
                      "prefilled with %d tokens (inputs_embeds, use_cache=True, model-created cache), then 1-token "
                      "steps with past_key_values (3 warm-up + %d timed); per-layer GPU time from cuda events "
                      "recorded in forward pre/post hooks on each decoder layer; GDN = all 3 GDN layers pooled. "
                      "Run twice: SDPA backends as torch picks them by default, and with the cuDNN SDPA backend "
                      "disabled (torch.backends.cuda.enable_cudnn_sdp(False)), because the KV length changes every "
                      "step." % (args.ctx, args.decode_steps)),
           "variants": {}}
    cfg4 = make_config(Qwen3_5TextConfig, num_layers=4,
                       layer_types=["linear_attention"] * 3 + ["full_attention"])
    model = build_on_cuda(lambda: mq.Qwen3_5TextModel(cfg4))
    out["attn_implementation"] = str(getattr(model.config, "_attn_implementation", None))
    types = list(cfg4.layer_types)
    orig = _sdpa_cudnn_enabled()
    out["cudnn_sdp_enabled_by_default"] = orig
    for name, flag in (("default_sdpa_backends", None), ("cudnn_sdpa_disabled", False)):
        try:
            if flag is not None:
                _set_sdpa_cudnn(flag)
            r = decode_variant(model, types, args, args.profile)
            r["cudnn_sdp_enabled"] = _sdpa_cudnn_enabled()
            out["variants"][name] = r
            log(f"decode [{name}] ctx={args.ctx}: gdn {r['decode_gdn']['median_ms']:.3f} ms, "
                f"attn {r['decode_attn']['median_ms']:.3f} ms "
                f"(cpu {r['per_layer']['3:full_attention']['cpu_wall_median_ms']:.3f} ms), "
                f"4-layer model {r['decode_model4_total']['median_ms']:.3f} ms")
        except Exception as exc:
            record_error(f"decode_{name}", exc)
        finally:
            if orig is not None:
                _set_sdpa_cudnn(orig)
        free_cuda()
    # headline = default backends (what transformers does out of the box); keep keys at top level too
    head = out["variants"].get("default_sdpa_backends") or next(iter(out["variants"].values()), {})
    for k in ("decode_gdn", "decode_attn", "decode_model4_total", "decode_model_overhead_ms", "cache_class"):
        if k in head:
            out[k] = head[k]
    del model
    free_cuda()
    try:
        out["sdpa_probe"] = sdpa_decode_probe(args.ctx)
        log("sdpa probe: " + ", ".join(f"{k}: {v['event_ms']:.3f}/{v['cpu_launch_ms']:.3f} ms"
                                       for k, v in out["sdpa_probe"].items() if isinstance(v, dict)))
    except Exception as exc:
        record_error("sdpa_probe", exc)
    return out


# ----------------------------------------------------------------------------------------------------------------
def extrapolate():
    pre = RESULTS.get("prefill", {})
    dec = RESULTS.get("decode", {})
    lm = RESULTS.get("lm_head", {})
    ex = {"formula": "48 x GDN decoder layer + 16 x attention decoder layer + lm_head GEMM (embedding, final norm, "
                     "sampling and the model-level python overhead excluded)",
          "label": "transformers BF16, extrapolated from per-layer timings"}
    ctx = RESULTS["args"]["ctx"]
    for vname, suffix in (("default_sdpa_backends", ""), ("cudnn_sdpa_disabled", "_cudnn_sdpa_disabled")):
        try:
            v = dec["variants"][vname]
            g, a = v["decode_gdn"]["median_ms"], v["decode_attn"]["median_ms"]
            lmh = lm["lm_head_M1"]["median_ms"]
            tot = N_GDN * g + N_ATTN * a + lmh
            d = {"ms_per_token": tot, "tok_s": 1e3 / tot, "gdn_layer_ms": g, "attn_layer_ms": a, "lm_head_ms": lmh,
                 "sdpa": vname}
            ov = v.get("decode_model_overhead_ms")
            if ov is not None:
                tot2 = tot + max(ov, 0.0)
                d["with_model_overhead"] = {
                    "overhead_ms": ov, "ms_per_token": tot2, "tok_s": 1e3 / tot2,
                    "note": "adds the 4-layer model's per-step time outside its decoder layers (mask/rope/norm)"}
            ex[f"decode_ctx{ctx}{suffix}"] = d
        except Exception as exc:
            ex[f"decode_ctx{ctx}{suffix}_error"] = f"{type(exc).__name__}: {exc}"
    for T in (1024, 8192):
        try:
            g = pre[f"prefill_T{T}_gdn"]["median_ms"]
            a = pre[f"prefill_T{T}_attn"]["median_ms"]
            lmT = lm[f"lm_head_M{T}"]["median_ms"]
            lm1 = lm["lm_head_M1"]["median_ms"]
            tot = N_GDN * g + N_ATTN * a + lmT
            tot1 = N_GDN * g + N_ATTN * a + lm1
            ex[f"prefill_T{T}"] = {
                "ttft_ms": tot, "tok_s": T / (tot * 1e-3), "gdn_layer_ms": g, "attn_layer_ms": a,
                "lm_head_ms": lmT,
                "gdn_note": pre[f"prefill_T{T}_gdn"].get("note", ""),
                "last_token_logits_only": {"ttft_ms": tot1, "tok_s": T / (tot1 * 1e-3), "lm_head_ms": lm1,
                                           "note": "lm_head on the last row only (what generate() does)"}}
        except Exception as exc:
            ex[f"prefill_T{T}_error"] = f"{type(exc).__name__}: {exc}"
    return ex


def fmt(v, spec=".3f"):
    try:
        return format(v, spec)
    except Exception:
        return "n/a"


def print_table():
    R = RESULTS
    env = R.get("env", {})
    pre, dec, ex = R.get("prefill", {}), R.get("decode", {}), R.get("extrapolated", {})
    L = []
    L.append("=" * 100)
    L.append(f"torch reference — {env.get('gpu', '?')} | torch {env.get('torch', '?')} | transformers "
             f"{env.get('transformers', '?')} | CUDA {env.get('cuda', '?')}")
    gp = R.get("gdn_kernel_path", {})
    L.append(f"GDN kernel path: {gp.get('summary', 'unknown')}")
    L.append(f"attention implementation: {pre.get('attn_implementation', '?')} (standalone), "
             f"{dec.get('attn_implementation', '?')} (4-layer model)")
    L.append("-" * 100)
    L.append("transformers Qwen3_5DecoderLayer, BF16, batch 1 (median ms)      GDN layer    attn layer")
    for T in (1024, 8192):
        g = pre.get(f"prefill_T{T}_gdn", {})
        a = pre.get(f"prefill_T{T}_attn", {})
        note = f"  [{g['note']}]" if g.get("note") else ""
        L.append(f"  prefill T={T:<5d}                                            {fmt(g.get('median_ms')):>10s}  "
                 f"{fmt(a.get('median_ms')):>12s}{note}")
    for vname, label in (("default_sdpa_backends", "default SDPA"), ("cudnn_sdpa_disabled", "cuDNN SDPA off")):
        v = dec.get("variants", {}).get(vname, {})
        L.append(f"  decode 1 tok, ctx {R['args']['ctx']}, {label:14s} (4-layer model hooks)   "
                 f"{fmt(v.get('decode_gdn', {}).get('median_ms')):>10s}  {fmt(v.get('decode_attn', {}).get('median_ms')):>12s}"
                 f"   [4-layer step {fmt(v.get('decode_model4_total', {}).get('median_ms'))} ms, outside layers "
                 f"{fmt(v.get('decode_model_overhead_ms'))} ms]")
    lm = R.get("lm_head", {})
    L.append("  lm_head GEMM [M,5120]x[5120,248320] ms: " + ", ".join(
        f"M={M}: {fmt(lm.get(f'lm_head_M{M}', {}).get('median_ms'))}" for M in (1, 1024, 8192)))
    L.append("-" * 100)
    L.append("transformers BF16, extrapolated from per-layer timings (48 GDN + 16 attn + lm_head):")
    for suffix, label in (("", "default SDPA"), ("_cudnn_sdpa_disabled", "cuDNN SDPA off")):
        d = ex.get("decode_ctx%d%s" % (R["args"]["ctx"], suffix), {})
        wo = d.get("with_model_overhead", {})
        L.append(f"  decode batch 1, ctx {R['args']['ctx']}, {label:14s}: {fmt(d.get('ms_per_token'), '.1f')} ms/token = "
                 f"{fmt(d.get('tok_s'), '.2f')} tok/s   (incl. model overhead: {fmt(wo.get('tok_s'), '.2f')} tok/s)")
    for T in (1024, 8192):
        p = ex.get(f"prefill_T{T}", {})
        p1 = p.get("last_token_logits_only", {})
        note = f" [{p['gdn_note']}]" if p.get("gdn_note") else ""
        L.append(f"  prefill {T:5d} tok: TTFT {fmt(p.get('ttft_ms'), '.1f')} ms = {fmt(p.get('tok_s'), '.0f')} tok/s"
                 f"   (last-token lm_head only: TTFT {fmt(p1.get('ttft_ms'), '.1f')} ms = "
                 f"{fmt(p1.get('tok_s'), '.0f')} tok/s){note}")
    L.append("-" * 100)
    gm = R.get("gemm", {})
    L.append("raw torch GEMM, M=1, CUDA-graph timed, weights from HBM   BF16 us  BF16 GB/s | FP8 us  FP8 GB/s | eager us bf16/fp8")
    for name, N, K in GEMM_SHAPES:
        r = gm.get("shapes", {}).get(name, {})
        L.append(f"  {name:14s} {N:6d} x {K:5d}                    {fmt(r.get('bf16_us'), '.1f'):>9s} "
                 f"{fmt(r.get('bf16_GBps'), '.0f'):>9s} | {fmt(r.get('fp8_us'), '.1f'):>6s} "
                 f"{fmt(r.get('fp8_GBps'), '.0f'):>8s} | {fmt(r.get('bf16_eager_us'), '.1f')}/"
                 f"{fmt(r.get('fp8_eager_us'), '.1f')}")
    modes = sorted({r.get("fp8_mode") for r in gm.get("shapes", {}).values() if r.get("fp8_mode")})
    timings = sorted({r.get(k) for r in gm.get("shapes", {}).values() for k in ("bf16_timing", "fp8_timing")
                      if r.get(k)})
    L.append(f"  FP8 _scaled_mm mode: {', '.join(modes) if modes else 'n/a'}; timing: {', '.join(timings) or 'n/a'}")
    for dt in ("bf16", "fp8"):
        f = gm.get(f"decode_gemm_floor_{dt}", {})
        L.append(f"  GEMM-only 64-layer decode floor ({dt}): {fmt(f.get('total_ms'), '.2f')} ms/token = "
                 f"{fmt(f.get('tok_s'), '.1f')} tok/s")
    cp = R.get("copy", {})
    L.append(f"device-to-device copy_ of 1 GiB: {fmt(cp.get('time', {}).get('median_ms'))} ms = "
             f"{fmt(cp.get('GBps_read_plus_write'), '.0f')} GB/s (read+write), "
             f"{fmt(cp.get('GBps_bytes_copied'), '.0f')} GB/s (bytes copied)")
    L.append(f"peak GPU memory allocated: {fmt(R.get('peak_mem_GiB'), '.2f')} GiB, wall {fmt(R.get('wall_s'), '.1f')} s")
    if R["errors"]:
        L.append(f"errors ({len(R['errors'])}): " + "; ".join(
            f"{k}: {(v['error'] if isinstance(v, dict) else v)[:160]}" for k, v in R["errors"].items()))
    L.append("=" * 100)
    print("\n".join(L), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_out = os.path.join(os.environ["OUT"], "torch_reference.json") if os.environ.get("OUT") else \
        "/tmp/torch_reference.json"
    ap.add_argument("--out", default=default_out, help="JSON output path (default $OUT/torch_reference.json)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per measurement (median reported)")
    ap.add_argument("--ctx", type=int, default=8192, help="cached tokens before the decode step")
    ap.add_argument("--decode-steps", type=int, default=10, help="timed decode steps (after 3 warm-up steps)")
    ap.add_argument("--gdn-8k-limit-s", type=float, default=4.0,
                    help="if the T=8192 GDN forward is estimated slower than this, time T=2048 and scale x4")
    ap.add_argument("--gemm-inner", type=int, default=50, help="back-to-back GEMM calls per timed batch")
    ap.add_argument("--pool-mib", type=int, default=512, help="min total size of rotated weight copies (MiB)")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip torch.profiler kernel lists")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: prefill,decode,lm_head,gemm,copy")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    RESULTS["args"] = vars(args)

    if not torch.cuda.is_available():
        print("CUDA not available", file=sys.stderr)
        RESULTS["errors"]["cuda"] = "CUDA not available"
    else:
        props = torch.cuda.get_device_properties(0)
        RESULTS["env"] = {"gpu": props.name, "gpu_mem_GiB": props.total_memory / 2**30, "torch": torch.__version__,
                          "cuda": torch.version.cuda, "python": sys.version.split()[0]}
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
        mq = cfg = Qwen3_5TextConfig = None
        try:
            transformers, mq, Qwen3_5TextConfig = import_qwen35()
            RESULTS["env"]["transformers"] = transformers.__version__
            cfg = make_config(Qwen3_5TextConfig)
            RESULTS["config"] = {k: getattr(cfg, k, None) for k in (
                "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                "linear_value_head_dim", "linear_conv_kernel_dim", "rms_norm_eps", "vocab_size")}
            RESULTS["config"]["rope_parameters"] = str(getattr(cfg, "rope_parameters", None))
            RESULTS["config"]["layer_types_first8"] = list(cfg.layer_types[:8])
            RESULTS["config"]["n_full_attention"] = cfg.layer_types.count("full_attention")
            RESULTS["config"]["attn_implementation"] = str(getattr(cfg, "_attn_implementation", None))
            log(f"transformers {transformers.__version__}, torch {torch.__version__}, {props.name}")
        except Exception as exc:
            record_error("import/config", exc)

        parts = [
            ("prefill", lambda: part_prefill(mq, cfg, args), cfg is not None),
            ("decode", lambda: part_decode(mq, Qwen3_5TextConfig, args), cfg is not None),
            ("lm_head", lambda: part_lm_head(args), True),
            ("gemm", lambda: part_gemm(args), True),
            ("copy", lambda: part_copy(args), True),
        ]
        for name, fn, ok in parts:
            if name in skip or not ok:
                continue
            log(f"--- {name}")
            try:
                RESULTS[name] = fn()
            except Exception as exc:
                record_error(name, exc)
            free_cuda()
        RESULTS["extrapolated"] = extrapolate()
        RESULTS["peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    RESULTS["wall_s"] = time.time() - T0
    try:
        print_table()
    except Exception as exc:
        record_error("print_table", exc)
    if args.out:
        try:
            d = os.path.dirname(os.path.abspath(args.out))
            os.makedirs(d, exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(RESULTS, f, indent=2, default=str)
            log(f"wrote {args.out}")
        except Exception as exc:
            print(f"could not write {args.out}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
