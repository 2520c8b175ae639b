#!/usr/bin/env python3
"""Builds the quantized-checkpoint fixtures (issue 3) and their goldens.

Runs where transformers (with Qwen3.5) and PyTorch are installed (the accelerator machine; no GPU
needed). From one tiny BF16 model whose dimensions are multiples of 128 it writes the five
checkpoint layouts people publish, each exactly the way its producer writes it (names, dtypes,
shapes, config JSON; ../shared/spec/formats.md §2–6):
  (a) ct-fp8-dynamic    compressed-tensors FP8 W8A8: per-channel weight_scale, per-token dynamic acts
  (b) qwen-fp8-block    Qwen "fp8": weight_scale_inv per 128×128 block, per-token-per-128-group acts,
                        MTP head FP8 in a separate mtp.safetensors
  (c) modelopt-nvfp4    ModelOpt NVFP4: packed E2M1 + FP8 block scales + weight_scale_2/input_scale,
                        hf_quant_config.json, glob excludes, DeltaNet in_proj_a/b quantized, FP8 KV scales
  (d) ct-nvfp4          compressed-tensors nvfp4-pack-quantized W4A4: weight_packed, *_global_scale
                        divisors, in_proj_qkv and in_proj_z with different global scales
  (e) fp8-block-lmhead  (b) plus FP8 lm_head and embed_tokens with opt-ins
Goldens come from the reference library's model with the declared numerics: each quantized Linear's
weight replaced by its dequantized value and its input fake-quantized in PyTorch (torch's own
float8 casts), plus weight-only goldens (activations left in float32). FP8 decode/encode tables
from torch's float8 dtypes go to fp8_tables.safetensors.

Usage: python3 tools/make_quant_fixtures.py OUT_DIR
"""
import json
import math
import os
import shutil
import sys
import tempfile
import zlib

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import MTPReference, TINY_VISION, reinit  # noqa: E402
from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration  # noqa: E402

FP8 = torch.float8_e4m3fn
PROMPT = 100
TEXT = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
            layer_types=["linear_attention", "full_attention"] * 2,
            num_attention_heads=1, num_key_value_heads=1, head_dim=128,
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=64,
            linear_value_head_dim=32, linear_conv_kernel_dim=4,
            rope_parameters=dict(rope_type="default", rope_theta=10000000.0, partial_rotary_factor=0.25,
                                 mrope_section=[6, 5, 5], mrope_interleaved=True),
            rms_norm_eps=1e-6, hidden_act="silu", eos_token_id=511)
LM = "model.language_model."

# ---------------------------------------------------------------- numerics (formats.md §1–7)

E2M1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float32)


def e2m1_code(x):
    """Round to E2M1, nearest with ties to even (formats.md §1.3); returns 4-bit codes."""
    a = x.abs()
    idx = ((a > 0.25).int() + (a >= 0.75).int() + (a > 1.25).int() + (a >= 1.75).int()
           + (a > 2.5).int() + (a >= 3.5).int() + (a > 5.0).int())
    return (idx + 8 * (x < 0).int()).to(torch.uint8)


def e2m1_value(code):
    v = E2M1[(code & 7).long()]
    return torch.where((code & 8) != 0, -v, v)


def pack_fp4(codes):  # [out, in] codes → [out, in/2] bytes, even element in the low nibble
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()


def fp8(x):
    return x.clamp(-448, 448).to(FP8)


def quant_fp8_channel(w):
    s = (w.abs().amax(dim=1, keepdim=True) / 448).clamp(min=1e-12).to(torch.bfloat16)
    q = fp8(w / s.float())
    return q, s, q.float() * s.float()


def quant_fp8_block(w, scale_dtype=torch.bfloat16):
    out, inp = w.shape
    ro, ri = math.ceil(out / 128), math.ceil(inp / 128)
    pad = torch.zeros(ro * 128, ri * 128)
    pad[:out, :inp] = w
    blocks = pad.view(ro, 128, ri, 128)
    s = (blocks.abs().amax(dim=(1, 3)) / 448).clamp(min=1e-12).to(scale_dtype)
    full = s.float().repeat_interleave(128, 0).repeat_interleave(128, 1)[:out, :inp]
    q = fp8(w / full)
    return q, s, q.float() * full


def quant_nvfp4(w, global_mult):
    """global_mult: the factor that maps block amax/6 to the FP8 block scale (1/weight_scale_2 for
    ModelOpt, weight_global_scale for compressed-tensors). Returns codes, fp8 block scales, dequant."""
    out, inp = w.shape
    blocks = w.view(out, inp // 16, 16)
    amax = blocks.abs().amax(dim=2)
    sv = torch.where(amax == 0, torch.ones_like(amax), amax / 6 * global_mult)  # all-zero block: scale 1
    s = fp8(sv)
    sf = s.float().repeat_interleave(16, 1)
    codes = e2m1_code((w * global_mult / sf).clamp(-6, 6))
    deq = e2m1_value(codes) * sf / global_mult
    return codes, s, deq


def act_fp8_token(x):
    s = (x.abs().amax(dim=-1, keepdim=True) / 448).clamp(min=1.0 / (448 * 512))
    return fp8(x / s).float() * s


def act_fp8_group(x, g=128):
    shp = x.shape
    xg = x.reshape(*shp[:-1], shp[-1] // g, g)
    s = xg.abs().amax(dim=-1, keepdim=True).clamp(min=1e-10) / 448
    return (fp8(xg / s).float() * s).reshape(shp)


def act_nvfp4(x, gx):
    shp = x.shape
    xb = x.reshape(*shp[:-1], shp[-1] // 16, 16)
    s = fp8((xb.abs().amax(dim=-1, keepdim=True) * gx / 6).clamp(max=448)).float()
    q = e2m1_value(e2m1_code((xb * gx / torch.where(s == 0, torch.ones_like(s), s)).clamp(-6, 6)))
    return torch.where(s == 0, torch.zeros_like(xb), q * s / gx).reshape(shp)


# ---------------------------------------------------------------- the base model

def build_base(gen):
    cfg = Qwen3_5Config(text_config=dict(TEXT), vision_config=dict(TINY_VISION, out_hidden_size=TEXT["hidden_size"]),
                        tie_word_embeddings=False)
    model = Qwen3_5ForConditionalGeneration(cfg)
    reinit(model, gen, False)
    return model


def linear_modules(model):
    return {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


GROUPS = [("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("mlp.gate_proj", "mlp.up_proj"),
          ("linear_attn.in_proj_qkv", "linear_attn.in_proj_z", "linear_attn.in_proj_b", "linear_attn.in_proj_a")]


def fused_group(name, groups):
    for g in groups:
        for member in g:
            if name.endswith("." + member):
                prefix = name[: -len(member)]
                return [prefix + m for m in g]
    return [name]


# ---------------------------------------------------------------- layouts

def plan(layout, mod, is_mtp):
    """Which modules each producer quantizes (what it writes in the file)."""
    if mod.startswith("model.visual."):
        return False
    if layout in ("ct-fp8-dynamic", "ct-nvfp4"):
        if is_mtp:  # llm-compressor never saw the MTP head: it stays BF16
            return False
        return not (mod == "lm_head" or mod.endswith("in_proj_a") or mod.endswith("in_proj_b"))
    if layout in ("qwen-fp8-block", "fp8-block-lmhead"):
        return not (mod == "lm_head" or mod.endswith("in_proj_a") or mod.endswith("in_proj_b"))
    if layout == "modelopt-nvfp4":
        return not (mod == "lm_head" or is_mtp)
    raise ValueError(layout)


def write_layout(layout, base_dir, out, tensors, modules, calib_amax, gen):
    """Returns {module: (dequantized fp32 weight, activation fn or None)} for the goldens."""
    os.makedirs(out, exist_ok=True)
    main, mtp, numerics = {}, {}, {}
    groups_ct = GROUPS[:2]  # llm-compressor links only q/k/v and gate/up global scales
    for name, t in tensors.items():
        (mtp if name.startswith("mtp.") else main)[name] = t
    for mod in sorted(modules):
        is_mtp = mod.startswith("mtp.")
        dst = mtp if is_mtp else main
        wname = mod + ".weight"
        if not plan(layout, mod, is_mtp):
            continue
        w = dst.pop(wname).float()
        if layout == "ct-fp8-dynamic":
            q, s, deq = quant_fp8_channel(w)
            dst[wname], dst[mod + ".weight_scale"] = q, s
            numerics[mod] = (deq, act_fp8_token)
        elif layout in ("qwen-fp8-block", "fp8-block-lmhead"):
            q, s, deq = quant_fp8_block(w)
            dst[wname], dst[mod + ".weight_scale_inv"] = q, s
            numerics[mod] = (deq, act_fp8_group)
        elif layout == "modelopt-nvfp4":
            group = fused_group(mod, GROUPS)  # ModelOpt unifies input and weight amax in fused groups
            w_amax = max(float(tensors[g + ".weight"].float().abs().max()) for g in group)
            x_amax = max(calib_amax[g] for g in group)
            ws2 = torch.tensor(w_amax / (6 * 448), dtype=torch.float32)
            in_scale = torch.tensor(x_amax / (6 * 448), dtype=torch.float32)
            codes, s, deq = quant_nvfp4(w, 1.0 / float(ws2))
            dst[wname], dst[mod + ".weight_scale"] = pack_fp4(codes), s
            dst[mod + ".weight_scale_2"], dst[mod + ".input_scale"] = ws2, in_scale
            gx = 1.0 / float(in_scale)
            numerics[mod] = (deq, lambda x, gx=gx: act_nvfp4(x, gx))
        elif layout == "ct-nvfp4":
            group = fused_group(mod, groups_ct)
            w_amax = max(float(tensors[g + ".weight"].float().abs().max()) for g in group)
            gw = torch.tensor([448 * 6 / w_amax], dtype=torch.float32)
            gx = torch.tensor([448 * 6 / calib_amax[mod]], dtype=torch.float32)
            codes, s, deq = quant_nvfp4(w, float(gw))
            dst[mod + ".weight_packed"], dst[mod + ".weight_scale"] = pack_fp4(codes), s
            dst[mod + ".weight_global_scale"], dst[mod + ".input_global_scale"] = gw, gx
            numerics[mod] = (deq, lambda x, gx=float(gx): act_nvfp4(x, gx))
    if layout == "fp8-block-lmhead":
        for name in ("lm_head", LM + "embed_tokens"):
            w = main.pop(name + ".weight").float()
            q, s, deq = quant_fp8_block(w)
            main[name + ".weight"], main[name + ".weight_scale_inv"] = q, s
            numerics[name] = (deq, act_fp8_group if name == "lm_head" else None)
    # FP8 KV-cache scales, in each producer's spelling.
    for i, kind in enumerate(TEXT["layer_types"]):
        if kind != "full_attention":
            continue
        p = f"{LM}layers.{i}.self_attn."
        ks, vs = 0.5 + torch.rand(1, generator=gen), 0.5 + torch.rand(1, generator=gen)
        if layout == "ct-fp8-dynamic":
            main[p + "k_scale"], main[p + "v_scale"] = ks.to(torch.bfloat16), vs.to(torch.bfloat16)
        elif layout == "modelopt-nvfp4":
            main[p + "k_proj.k_scale"] = ks.clamp(min=1.0).reshape(())
            main[p + "v_proj.v_scale"] = vs.clamp(min=1.0).reshape(())
    meta = {"format": "pt"}
    contig = lambda d: {k: v.contiguous() for k, v in d.items()}
    if layout in ("qwen-fp8-block", "fp8-block-lmhead"):
        save_file(contig(main), os.path.join(out, "model.safetensors"), metadata=meta)
        save_file(contig(mtp), os.path.join(out, "mtp.safetensors"), metadata=meta)
    else:
        save_file(contig({**main, **mtp}), os.path.join(out, "model.safetensors"), metadata=meta)
    write_configs(layout, base_dir, out, modules)
    return numerics


def write_configs(layout, base_dir, out, modules):
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    lm_linears = sorted(m for m in modules if not m.startswith("mtp."))
    ignore = [m for m in lm_linears if not plan(layout, m, False)]
    if layout == "ct-fp8-dynamic":
        cfg["quantization_config"] = {
            "quant_method": "compressed-tensors", "format": "float-quantized", "quantization_status": "compressed",
            "version": "0.14.0.1", "global_compression_ratio": None, "sparsity_config": {}, "transform_config": {},
            "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor", "symmetric": True,
                                "dynamic": False},
            "ignore": ignore,
            "config_groups": {"group_0": {
                "targets": ["Linear"], "format": "float-quantized",
                "weights": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel",
                            "group_size": None, "block_structure": None, "dynamic": False, "actorder": None,
                            "observer": "minmax", "observer_kwargs": {}},
                "input_activations": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "token",
                                      "dynamic": True, "observer": None},
                "output_activations": None}}}
    elif layout in ("qwen-fp8-block", "fp8-block-lmhead"):
        not_convert = ["lm_head", LM + "embed_tokens"] + [m for m in ignore if m != "lm_head"]
        not_convert += [f"{LM}layers.{i}.{n}" for i in range(TEXT["num_hidden_layers"])
                        for n in ("input_layernorm", "post_attention_layernorm")]
        q = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128],
             "modules_to_not_convert": not_convert}
        if layout == "fp8-block-lmhead":
            q["lm_head"] = True
            q["embed_tokens"] = True
            q["modules_to_not_convert"] = [m for m in not_convert if m not in ("lm_head", LM + "embed_tokens")]
        cfg["quantization_config"] = q
    elif layout == "modelopt-nvfp4":
        excl = ["lm_head", "model.visual*", "mtp*", f"{LM}layers.*.linear_attn.conv1d"]
        hf = {"producer": {"name": "modelopt", "version": "0.42.0"},
              "quantization": {"quant_algo": "NVFP4", "group_size": 16, "kv_cache_quant_algo": "FP8",
                               "exclude_modules": excl}}
        json.dump(hf, open(os.path.join(out, "hf_quant_config.json"), "w"), indent=2)
        cfg["quantization_config"] = {
            "quant_method": "modelopt", "quant_algo": "NVFP4",
            "config_groups": {"group_0": {"targets": ["Linear"],
                                          "weights": {"dynamic": False, "num_bits": 4, "type": "float", "group_size": 16},
                                          "input_activations": {"dynamic": False, "num_bits": 4, "type": "float",
                                                                "group_size": 16}}},
            "ignore": excl, "kv_cache_scheme": {"dynamic": False, "num_bits": 8, "type": "float"},
            "producer": {"name": "modelopt", "version": "0.42.0"}}
    elif layout == "ct-nvfp4":
        args = {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True,
                "scale_dtype": "torch.float8_e4m3fn", "zp_dtype": None}
        cfg["quantization_config"] = {
            "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
            "quantization_status": "compressed", "version": "0.14.0.1", "kv_cache_scheme": None,
            "ignore": ignore,
            "config_groups": {"group_0": {"targets": ["Linear"], "format": "nvfp4-pack-quantized",
                                          "weights": dict(args, dynamic=False, observer="memoryless_minmax"),
                                          "input_activations": dict(args, dynamic="local", observer="static_minmax")}}}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(base_dir, "generation_config.json"), os.path.join(out, "generation_config.json"))


# ---------------------------------------------------------------- goldens

class QuantLinear(torch.nn.Module):
    def __init__(self, weight, act):
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.act = act

    def forward(self, x):
        return torch.nn.functional.linear(self.act(x) if self.act else x, self.weight)


def patched(module_root, numerics, prefix_map, weight_only):
    """Swaps Linear modules named in `numerics` (checkpoint names) for dequantized ones."""
    for ck_name, (deq, act) in numerics.items():
        name = prefix_map(ck_name)
        if name is None:
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = module_root.get_submodule(parent_name) if parent_name else module_root
        old = getattr(parent, leaf)
        if isinstance(old, torch.nn.Embedding):
            old.weight.data.copy_(deq)
        else:
            setattr(parent, leaf, QuantLinear(deq.clone(), None if weight_only else act))


def golden_logits(base_dir, numerics, ids, mtp_sd, weight_only, gen_seed):
    model = Qwen3_5ForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    patched(model, {k: v for k, v in numerics.items() if not k.startswith("mtp.")},
            lambda n: n, weight_only)
    tc = model.config.text_config
    mtp = MTPReference(tc, torch.Generator().manual_seed(gen_seed))
    sd = {k.replace("mtp.", "", 1).replace("layers.0.", "layer."): v.float() for k, v in mtp_sd.items()}
    mtp.load_state_dict(sd, strict=False)
    patched(mtp, {k: v for k, v in numerics.items() if k.startswith("mtp.")},
            lambda n: n.replace("mtp.", "", 1).replace("layers.0.", "layer."), weight_only)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
        hidden = model.model(input_ids=ids).last_hidden_state
        emb, head = model.model.language_model.embed_tokens, model.lm_head
        mtp_logits = mtp(hidden[:, :-1], ids[:, 1:], emb, head)[0]
    return logits.contiguous(), mtp_logits.contiguous(), hidden[0, :-1].contiguous()


def fp8_tables(out):
    codes = torch.arange(256, dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    e4_vals = torch.cat([torch.randn(4000, generator=g) * 50, torch.randn(2000, generator=g) * 0.01,
                         torch.rand(2000, generator=g) * 2 ** -6])
    e4_codes = codes.view(FP8).float()
    fin = e4_codes[torch.isfinite(e4_codes)].unique()
    mids = (fin[1:] + fin[:-1]) / 2  # ties: round half to even
    e4_vals = torch.cat([e4_vals, fin, mids]).clamp(-448, 448)
    e5_codes = codes.view(torch.float8_e5m2).float()
    fin5 = e5_codes[torch.isfinite(e5_codes)].unique()
    e5_vals = torch.cat([torch.randn(4000, generator=g) * 1000, torch.randn(2000, generator=g) * 1e-3, fin5,
                         (fin5[1:] + fin5[:-1]) / 2]).clamp(-57344, 57344)
    save_file({"e4m3_decode": e4_codes.contiguous(), "e5m2_decode": e5_codes.contiguous(),
               "e4m3_encode_in": e4_vals.contiguous(), "e4m3_encode_out": e4_vals.to(FP8).view(torch.uint8).contiguous(),
               "e5m2_encode_in": e5_vals.contiguous(),
               "e5m2_encode_out": e5_vals.to(torch.float8_e5m2).view(torch.uint8).contiguous()},
              os.path.join(out, "fp8_tables.safetensors"), metadata={"reference": f"torch {torch.__version__}"})


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/quant"
    os.makedirs(root, exist_ok=True)
    fp8_tables(root)
    gen = torch.Generator().manual_seed(zlib.crc32(b"quant-base"))
    torch.manual_seed(99)
    base = build_base(gen)
    # Qwen3.5 dtype exceptions: A_log and linear_attn.norm stay F32.
    base = base.to(torch.bfloat16)
    for m in base.modules():
        if m.__class__.__name__ == "Qwen3_5GatedDeltaNet":
            m.A_log.data = m.A_log.data.float()
            m.norm.weight.data = m.norm.weight.data.float()
    tmp = tempfile.mkdtemp()
    base_dir = os.path.join(tmp, "base")
    base.save_pretrained(base_dir)
    json.dump({"eos_token_id": [511, 510]}, open(os.path.join(base_dir, "generation_config.json"), "w"))
    tensors = {}
    for f in os.listdir(base_dir):
        if f.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(base_dir, f)))
    mtp_seed = 4242
    mtp = MTPReference(base.config.text_config, torch.Generator().manual_seed(mtp_seed))
    mtp_sd = {k: v.to(torch.bfloat16) for k, v in mtp.state().items()}
    tensors.update(mtp_sd)
    modules = {m for m in linear_modules(base)} | {k[:-len(".weight")] for k in mtp_sd if
                                                   k.endswith("_proj.weight") or k == "mtp.fc.weight"}

    # Calibration amax of every Linear input (static NVFP4 input scales), from the BF16 model in fp32.
    ids_cal = torch.randint(0, TEXT["vocab_size"], (1, 160), generator=torch.Generator().manual_seed(11))
    calib = {}
    ref32 = Qwen3_5ForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    mtp32 = MTPReference(ref32.config.text_config, torch.Generator().manual_seed(mtp_seed))
    mtp32.load_state_dict({k.replace("mtp.", "", 1).replace("layers.0.", "layer."): v.float()
                           for k, v in mtp_sd.items()}, strict=False)
    hooks = []
    for root_mod, rename in ((ref32, lambda n: n), (mtp32, lambda n: "mtp." + n.replace("layer.", "layers.0.", 1))):
        for n, m in root_mod.named_modules():
            if isinstance(m, torch.nn.Linear):
                key = rename(n)
                hooks.append(m.register_forward_hook(
                    lambda mod, inp, outp, key=key: calib.__setitem__(key, max(calib.get(key, 0.0),
                                                                               float(inp[0].abs().max())))))
    with torch.no_grad():
        hidden = ref32.model(input_ids=ids_cal).last_hidden_state
        mtp32(hidden[:, :-1], ids_cal[:, 1:], ref32.model.language_model.embed_tokens, ref32.lm_head)
        ref32.lm_head(hidden)
    for h in hooks:
        h.remove()

    ids = torch.randint(0, TEXT["vocab_size"], (1, PROMPT), generator=torch.Generator().manual_seed(5))
    for layout in ("ct-fp8-dynamic", "qwen-fp8-block", "modelopt-nvfp4", "ct-nvfp4", "fp8-block-lmhead"):
        out = os.path.join(root, layout)
        shutil.rmtree(out, ignore_errors=True)
        numerics = write_layout(layout, base_dir, out, tensors, modules, calib, gen)
        # Vision tower tensors are written too (the real files carry them); MTP follows plan().
        g = {"ids": ids[0].to(torch.int32).contiguous()}
        for mode, wo in (("declared", False), ("weight_only", True)):
            logits, mtp_logits, hid = golden_logits(base_dir, numerics, ids, mtp_sd, wo, mtp_seed)
            g[f"{mode}_logits"] = logits.float()
            g[f"{mode}_mtp_logits"] = mtp_logits.float()
            g[f"{mode}_mtp_hidden"] = hid.float()
        save_file(g, os.path.join(out, "golden.safetensors"),
                  metadata={"generator": "tools/make_quant_fixtures.py",
                            "transformers_version": __import__("transformers").__version__})
        nq = len(numerics)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        d = (g["declared_logits"] - g["weight_only_logits"]).abs().max()
        print(f"== {layout}: {nq} quantized modules, {size / 1e6:.2f} MB, logit std "
              f"{float(g['declared_logits'].std()):.3f}, declared vs weight-only max diff {float(d):.3f}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
