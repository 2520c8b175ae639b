#!/usr/bin/env python3
"""Builds the tiny Qwen3.5/3.6 golden fixtures from the reference implementation.

Runs where Hugging Face transformers (with Qwen3.5 support) and PyTorch are installed — the
accelerator machine; it needs no GPU. For each fixture it:
  1. builds a random-weight model with the reference classes (Qwen3_5ForConditionalGeneration for
     the published wrapper layout, Qwen3_5ForCausalLM for the text-only layout),
  2. re-initialises the weights so that logits have unit scale (the library's default init makes
     them nearly constant),
  3. stores it with save_pretrained in the dtype the fixture asks for (BF16, F32, or BF16 with the
     Qwen3.5 F32 exceptions A_log and linear_attn.norm.weight), optionally rewriting config.json
     into an older spelling (flat rope fields, full_attention_interval instead of layer_types),
  4. adds MTP tensors (the library has no MTP head) in the place the fixture asks for,
  5. loads the directory back with the reference library in float32 / eager attention and records
     golden logits, greedy continuations (through the library's own cache, i.e. its recurrent
     decode path) and MTP outputs from a small independent PyTorch MTP reference (model.md §5.1)
     built from the library's decoder layer and norm.
Goldens go to <fixture>/golden.safetensors; nothing in it is derived from gdnserve.

Usage: python3 tools/make_fixtures.py OUT_DIR
"""
import copy
import zlib
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from transformers import (Qwen3_5Config, Qwen3_5ForCausalLM, Qwen3_5ForConditionalGeneration,
                          Qwen3_5TextConfig)
from transformers.models.qwen3_5 import modeling_qwen3_5 as ref

PROMPT_LONG = 200   # crosses the 64-token chunk boundary three times
PROMPT_SHORT = 37
GREEDY_PROMPT = 70
GREEDY_NEW = 24

FIXTURES = [
    dict(
        name="qwen35-wrapper-bf16",
        layout="wrapper", store="bf16-qwen35",  # BF16, A_log and linear_attn.norm F32 (Qwen3.5)
        text=dict(vocab_size=384, hidden_size=64, intermediate_size=160, num_hidden_layers=8,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  linear_num_key_heads=2, linear_num_value_heads=4,
                  linear_key_head_dim=16, linear_value_head_dim=24, linear_conv_kernel_dim=4,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0,
                                       partial_rotary_factor=0.25, mrope_section=[2, 1, 1],
                                       mrope_interleaved=True),
                  tie_word_embeddings=False, eos_token_id=383),
        rewrite={}, mtp="mtp.safetensors", generation=dict(eos_token_id=383),
    ),
    dict(
        name="qwen35-text-f32-tied",
        layout="text", store="f32",
        text=dict(vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=6,
                  layer_types=["linear_attention", "full_attention", "linear_attention",
                               "linear_attention", "full_attention", "linear_attention"],
                  num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                  linear_num_key_heads=1, linear_num_value_heads=3,
                  linear_key_head_dim=32, linear_value_head_dim=32, linear_conv_kernel_dim=4,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                       partial_rotary_factor=0.5, mrope_section=[2, 1, 1],
                                       mrope_interleaved=True),
                  tie_word_embeddings=True),
        # older flat spelling of the rope fields
        rewrite=dict(flat_rope=True), mtp="inline", generation=None,
    ),
    dict(
        name="qwen36-wrapper-sharded",
        layout="wrapper", store="bf16",  # Qwen3.6: everything BF16
        text=dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                  layer_types=["linear_attention", "full_attention"] * 2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                  linear_num_key_heads=2, linear_num_value_heads=6,
                  linear_key_head_dim=32, linear_value_head_dim=32, linear_conv_kernel_dim=4,
                  rope_parameters=dict(rope_type="default", rope_theta=10000000.0,
                                       partial_rotary_factor=0.25, mrope_section=[3, 3, 2],
                                       mrope_interleaved=True),
                  tie_word_embeddings=False, eos_token_id=510, output_gate_type="swish"),
        # layer_types dropped in favour of full_attention_interval = 2
        rewrite=dict(interval=2), mtp="shard", shard="150KB",
        generation=dict(eos_token_id=[511, 510], bos_token_id=510, pad_token_id=510),
    ),
]

TINY_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=2,
                   temporal_patch_size=1, spatial_merge_size=1, num_position_embeddings=16)


def reinit(model, gen, tied):
    """Unit-scale logits: linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norms near 0
    (used as 1+w) or near 1 (plain gated-norm weight), moderate DeltaNet decays."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.empty(p.shape).uniform_(0.1, 3.0, generator=gen).log())
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "linear_attn.norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "conv1d" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                # a tied embedding doubles as lm_head: scale it like one
                scale = p.shape[1] ** -0.5 if tied else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def build(fx, gen):
    text = dict(fx["text"])
    text.setdefault("rms_norm_eps", 1e-6)
    text.setdefault("hidden_act", "silu")
    if fx["layout"] == "wrapper":
        tie = text.pop("tie_word_embeddings")
        cfg = Qwen3_5Config(text_config=text, vision_config=dict(TINY_VISION, out_hidden_size=text["hidden_size"]),
                            tie_word_embeddings=tie)
        model = Qwen3_5ForConditionalGeneration(cfg)
    else:
        cfg = Qwen3_5TextConfig(**text)
        model = Qwen3_5ForCausalLM(cfg)
    reinit(model, gen, bool(fx["text"].get("tie_word_embeddings")))
    if fx["layout"] == "text" and text.get("tie_word_embeddings"):
        model.tie_weights()
    return model


def store_dtype(model, store):
    if store == "f32":
        return model.float()
    model = model.to(torch.bfloat16)
    if store == "bf16-qwen35":
        for mod in model.modules():
            if isinstance(mod, ref.Qwen3_5GatedDeltaNet):
                mod.A_log.data = mod.A_log.data.float()
                mod.norm.weight.data = mod.norm.weight.data.float()
    return model


def rewrite_config(path, fx):
    cfg = json.load(open(path))
    tc = cfg.get("text_config", cfg)
    if fx["rewrite"].get("flat_rope"):
        rp = tc.pop("rope_parameters")
        tc["rope_theta"] = rp["rope_theta"]
        tc["partial_rotary_factor"] = rp["partial_rotary_factor"]
    if "interval" in fx["rewrite"]:
        tc.pop("layer_types")
        tc["full_attention_interval"] = fx["rewrite"]["interval"]
    json.dump(cfg, open(path, "w"), indent=2)


class MTPReference(torch.nn.Module):
    """model.md §5.1: e'=norm(embed(x_{i+1})), h'=norm(h_i), u=fc([e';h']), one full-attention
    decoder layer at position i with a causal mask, final norm, shared lm_head."""

    def __init__(self, tc, gen):
        super().__init__()
        H = tc.hidden_size
        c1 = copy.deepcopy(tc)
        c1.num_hidden_layers = 1
        c1.layer_types = ["full_attention"]
        c1._attn_implementation = "eager"
        self.cfg = c1
        self.pre_fc_norm_embedding = ref.Qwen3_5RMSNorm(H, eps=tc.rms_norm_eps)
        self.pre_fc_norm_hidden = ref.Qwen3_5RMSNorm(H, eps=tc.rms_norm_eps)
        self.fc = torch.nn.Linear(2 * H, H, bias=False)
        self.layer = ref.Qwen3_5DecoderLayer(c1, 0)
        self.norm = ref.Qwen3_5RMSNorm(H, eps=tc.rms_norm_eps)
        self.rotary = ref.Qwen3_5TextRotaryEmbedding(c1)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm" in name:
                    p.copy_(0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)

    def state(self, prefix="mtp."):
        out = {}
        for k, v in self.state_dict().items():
            if k.startswith("rotary"):
                continue
            k = k.replace("layer.", "layers.0.")
            out[prefix + k] = v.detach().clone().contiguous()
        return out

    def forward(self, hidden, next_ids, embed, lm_head, start_pos=0):
        T = hidden.shape[1]
        x = self.fc(torch.cat([self.pre_fc_norm_embedding(embed(next_ids)),
                               self.pre_fc_norm_hidden(hidden)], dim=-1))
        pos = torch.arange(start_pos, start_pos + T)[None, None, :].expand(3, 1, T)
        pe = self.rotary(x, pos)
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
        x = self.layer(x, position_embeddings=pe, attention_mask=mask)
        return lm_head(self.norm(x))


def add_mtp(out, fx, tensors):
    tensors = {k: v.to(torch.bfloat16 if fx["store"] != "f32" else torch.float32) for k, v in tensors.items()}
    if fx["mtp"] == "mtp.safetensors":
        save_file(tensors, os.path.join(out, "mtp.safetensors"), metadata={"format": "pt"})
    elif fx["mtp"] == "inline":
        path = os.path.join(out, "model.safetensors")
        all_t = load_file(path)
        all_t.update(tensors)
        save_file(all_t, path, metadata={"format": "pt"})
    elif fx["mtp"] == "shard":
        name = "model-mtp.safetensors"
        save_file(tensors, os.path.join(out, name), metadata={"format": "pt"})
        idx_path = os.path.join(out, "model.safetensors.index.json")
        idx = json.load(open(idx_path))
        for k in tensors:
            idx["weight_map"][k] = name
        json.dump(idx, open(idx_path, "w"), indent=2)


def lm_parts(model):
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.model
    return lm, lm.embed_tokens, model.lm_head


def make(fx, root):
    gen = torch.Generator().manual_seed(zlib.crc32(fx["name"].encode()))
    torch.manual_seed(1234)
    out = os.path.join(root, fx["name"])
    shutil.rmtree(out, ignore_errors=True)
    model = store_dtype(build(fx, gen), fx["store"])
    save_kw = {"max_shard_size": fx["shard"]} if "shard" in fx else {}
    model.save_pretrained(out, **save_kw)
    if fx["generation"] is not None:
        json.dump(fx["generation"], open(os.path.join(out, "generation_config.json"), "w"), indent=2)
    elif os.path.exists(os.path.join(out, "generation_config.json")):
        os.remove(os.path.join(out, "generation_config.json"))
    # Oracle: the reference library reading the files back, float32, eager attention.
    cls = Qwen3_5ForConditionalGeneration if fx["layout"] == "wrapper" else Qwen3_5ForCausalLM
    load = lambda: cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    as_saved = load()
    rewrite_config(os.path.join(out, "config.json"), fx)
    ref_model = load()
    # The rewritten config must mean the same model as the one save_pretrained wrote.
    tc = ref_model.config.text_config if fx["layout"] == "wrapper" else ref_model.config
    V = tc.vocab_size
    tgen = torch.Generator().manual_seed(7)
    long_ids = torch.randint(0, V, (1, PROMPT_LONG), generator=tgen)
    short_ids = torch.randint(0, V, (1, PROMPT_SHORT), generator=tgen)
    with torch.no_grad():
        a = as_saved(input_ids=long_ids).logits
        b = ref_model(input_ids=long_ids).logits
        d = float((a - b).abs().max())
        assert d < 1e-5, f"{fx['name']}: rewritten config changed the model (max diff {d})"
        logits_long = b[0].contiguous()
        lm, embed, head = lm_parts(ref_model)
        hidden_long = ref_model.model(input_ids=long_ids).last_hidden_state[0].contiguous()
        # the final-normed hidden state is what lm_head reads (and what MTP consumes)
        assert (head(hidden_long) - logits_long).abs().max() < 1e-4
        logits_short = ref_model(input_ids=short_ids).logits[0].contiguous()

        # Greedy continuation through the library's cache (its recurrent decode path).
        gids = long_ids[:, :GREEDY_PROMPT]
        o = ref_model(input_ids=gids, use_cache=True)
        past, cont, margins = o.past_key_values, [], []
        for _ in range(GREEDY_NEW):
            last = o.logits[0, -1]
            top2 = last.topk(2).values
            margins.append(float(top2[0] - top2[1]))
            nxt = int(last.argmax())
            cont.append(nxt)
            o = ref_model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values

    # MTP reference over the long prompt: hidden h_i with token x_{i+1} at position i.
    mtp = MTPReference(tc, gen)
    add_mtp(out, fx, mtp.state())
    mtp_h = hidden_long[:-1][None]
    mtp_ids = long_ids[:, 1:]
    # The MTP tensors as stored may be bf16: compute the goldens from the stored values.
    stored = {}
    for f in os.listdir(out):
        if f.endswith(".safetensors"):
            stored.update({k: v for k, v in load_file(os.path.join(out, f)).items() if k.startswith("mtp.")})
    with torch.no_grad():
        sd = {k.replace("mtp.", "", 1).replace("layers.0.", "layer."): v.float() for k, v in stored.items()}
        missing = mtp.load_state_dict(sd, strict=False)
        assert not [m for m in missing.missing_keys if not m.startswith("rotary")], missing
        mtp_logits = mtp(mtp_h, mtp_ids, embed, head)[0].contiguous()
        # A fresh MTP sequence whose first position is 150: checks absolute positions in RoPE.
        mtp_logits_tail = mtp(mtp_h[:, 150:], mtp_ids[:, 150:], embed, head, start_pos=150)[0]

    golden = {
        "long_ids": long_ids[0].to(torch.int32).contiguous(),
        "long_logits": logits_long.float(),
        "short_ids": short_ids[0].to(torch.int32).contiguous(),
        "short_logits": logits_short.float(),
        "greedy_prompt": gids[0].to(torch.int32).contiguous(),
        "greedy_continuation": torch.tensor(cont, dtype=torch.int32),
        "greedy_margins": torch.tensor(margins, dtype=torch.float32),
        "mtp_hidden": mtp_h[0].float().contiguous(),
        "mtp_next_ids": mtp_ids[0].to(torch.int32).contiguous(),
        "mtp_logits": mtp_logits.float().contiguous(),
        "mtp_logits_from150": mtp_logits_tail.float().contiguous(),
    }
    save_file(golden, os.path.join(out, "golden.safetensors"),
              metadata={"generator": "tools/make_fixtures.py", "reference": "transformers",
                        "transformers_version": __import__("transformers").__version__,
                        "torch_version": torch.__version__})
    names = []
    for f in sorted(os.listdir(out)):
        if f.endswith(".safetensors") and f != "golden.safetensors":
            names += [f"{f}: {k} {tuple(v.shape)} {v.dtype}" for k, v in load_file(os.path.join(out, f)).items()]
    print(f"== {fx['name']}: {len(names)} tensors, min greedy margin {min(margins):.4f}, "
          f"logit std {float(logits_long.std()):.3f}")
    for n in names[:12]:
        print("   ", n)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(root, exist_ok=True)
    for fx in FIXTURES:
        make(fx, root)


if __name__ == "__main__":
    main()
