#!/usr/bin/env node
// Asks the REFERENCE regex engine (Oniguruma inside Hugging Face tokenizers, through the Node
// binding) which code points each character class of tokenizer regexes matches, and writes them
// as ranges to a JSON file. gen_unicode_props.cpp turns that into src/tokenizer/regex_unicode.inc.
//
//   node tools/tokenizer/dump_reference_props.mjs /tmp/ref_props.json
//
// Why: tokenizers 0.22's Oniguruma has Unicode 16.0 tables, PCRE2 10.42 (Debian 12) Unicode 14.0,
// so e.g. U+1C89 (Unicode 16) is \p{L} for the reference but not for PCRE2.
// How: a tokenizer whose only pre-tokenizer is Split(class, behavior Removed) leaves exactly the
// code points outside the class.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, ".deps/npm/node_modules/"));
const { Tokenizer } = require("@anush008/tokenizers");

// name → the class as written in a tokenizer regex (same list as gen_unicode_props.cpp).
export const CLASSES = {
  L: "\\p{L}", Lu: "\\p{Lu}", Ll: "\\p{Ll}", Lt: "\\p{Lt}", Lm: "\\p{Lm}", Lo: "\\p{Lo}",
  M: "\\p{M}", Mn: "\\p{Mn}", Mc: "\\p{Mc}", Me: "\\p{Me}",
  N: "\\p{N}", Nd: "\\p{Nd}", Nl: "\\p{Nl}", No: "\\p{No}",
  P: "\\p{P}", S: "\\p{S}", d: "\\d", w: "\\w", s: "\\s",
};

const minimal = { version: "1.0", added_tokens: [], normalizer: null, decoder: null,
                  model: { type: "BPE", vocab: { a: 0 }, merges: [] } };
const out = {};
for (const [name, cls] of Object.entries(CLASSES)) {
  const j = { ...minimal, pre_tokenizer: { type: "Split", pattern: { Regex: cls }, behavior: "Removed", invert: false } };
  const pt = Tokenizer.fromString(JSON.stringify(j)).getPreTokenizer();
  const ranges = [];
  for (let start = 0; start < 0x110000; start += 0x10000) {
    let s = "";
    const cps = [];
    for (let c = start; c < start + 0x10000; ++c) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      s += String.fromCodePoint(c);
      cps.push(c);
    }
    const outside = new Set();
    for (const [piece] of pt.preTokenizeString(s)) for (const ch of piece) outside.add(ch.codePointAt(0));
    for (const c of cps) {
      if (outside.has(c)) continue;
      const last = ranges[ranges.length - 1];
      if (last && last[1] === c - 1) last[1] = c;
      else if (last && last[1] === 0xd7ff && c === 0xe000) last[1] = c;  // across the surrogates
      else ranges.push([c, c]);
    }
  }
  out[name] = ranges;
  console.error(`${name}: ${ranges.length} ranges`);
}
fs.writeFileSync(process.argv[2] || "ref_props.json", JSON.stringify(out));
