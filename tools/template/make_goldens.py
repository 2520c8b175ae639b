#!/usr/bin/env python3
"""Golden renderings of the chat templates, made with Hugging Face transformers (the oracle).

For every template in tests/template/*_chat_template.jinja and every request in
tests/template/conversations.json, builds the template variables from the OpenAI
chat-completions request exactly as gdnserve does (src/template/chat_request.h; the same
normalisations vLLM applies) and renders them with transformers'
`render_jinja_template` — the function behind `tokenizer.apply_chat_template(...,
tokenize=False)`. Writes tests/template/goldens.json:

    {"_meta": {...versions...},
     "<template>": {"<conversation id>": {"text": "..."} | {"error": "...", "error_type": "..."}}}

Run from the repository root on a machine with transformers (5.x) and jinja2 installed:

    python3 tools/template/make_goldens.py

Needs no network and no model download. `--oracle jinja2` renders with a local replica of
transformers' Jinja environment instead; it exists only for development on machines without
transformers, and the C++ golden test rejects files it made.
"""

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "tests" / "template"


def request_to_context(request):
    """Mirror of gdn::chat_template_context (src/template/chat_request.cpp)."""
    messages = copy.deepcopy(request["messages"])
    for m in messages:
        if m.get("content") is None:
            m["content"] = ""
        if m.get("role") == "assistant":
            # vLLM passes the reasoning under both names
            reasoning = m.get("reasoning") or m.get("reasoning_content")
            if reasoning is not None:
                m["reasoning"] = reasoning
                m["reasoning_content"] = reasoning
            # vLLM's _postprocess_messages: OpenAI sends arguments as a JSON string
            if isinstance(m.get("tool_calls"), list):
                for call in m["tool_calls"]:
                    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                        continue
                    fn = call["function"]
                    args = fn.get("arguments")
                    if not args:
                        fn["arguments"] = {}
                    elif isinstance(args, str):
                        fn["arguments"] = json.loads(args)
    add_generation_prompt = request.get("add_generation_prompt")
    if add_generation_prompt is None:
        add_generation_prompt = True
    continue_final_message = bool(request.get("continue_final_message") or False)
    if continue_final_message and add_generation_prompt:
        raise ValueError("continue_final_message and add_generation_prompt are not compatible")
    ctx = {
        "messages": messages,
        "tools": request.get("tools"),
        "documents": request.get("documents"),
        "add_generation_prompt": add_generation_prompt,
    }
    for k, v in (request.get("chat_template_kwargs") or {}).items():
        if k != "messages":
            ctx[k] = v
    return ctx, continue_final_message


def transformers_renderer():
    import jinja2
    import transformers
    from transformers.utils import chat_template_utils as ctu

    def render(template, ctx, continue_final_message):
        ctx = dict(ctx)
        messages = ctx.pop("messages")
        tools = ctx.pop("tools")
        documents = ctx.pop("documents")
        add_generation_prompt = ctx.pop("add_generation_prompt")
        if hasattr(ctu, "render_jinja_template"):
            rendered, _ = ctu.render_jinja_template(
                conversations=[messages],
                tools=tools,
                documents=documents,
                chat_template=template,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                **ctx,
            )
            return rendered[0]
        # Older transformers: the compiled environment directly (continue_final_message unsupported).
        if continue_final_message:
            raise RuntimeError("this transformers version has no render_jinja_template")
        compiled = ctu._compile_jinja_template(template)
        return compiled.render(messages=messages, tools=tools, documents=documents,
                               add_generation_prompt=add_generation_prompt, **ctx)

    meta = {"oracle": "transformers", "transformers_version": transformers.__version__,
            "jinja2_version": jinja2.__version__}
    return render, meta


def jinja2_replica_renderer():
    """Development only: transformers' environment rebuilt from its documented settings."""
    from datetime import datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)

    def render(template, ctx, continue_final_message):
        text = env.from_string(template).render(**ctx)
        if continue_final_message:
            final = ctx["messages"][-1]["content"]
            if isinstance(final, (list, tuple)):
                final = next(b["text"] for b in reversed(final) if "text" in b)
            loc = text.rindex(final.strip())
            if text[loc:loc + len(final.lstrip())] == final:
                text = text[:loc + len(final.lstrip())]
            else:
                text = text[:loc + len(final.strip())]
        return text

    return render, {"oracle": "jinja2-replica (development only, not a valid golden)",
                    "jinja2_version": jinja2.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle", choices=["transformers", "jinja2"], default="transformers")
    ap.add_argument("--out", default=str(TEMPLATE_DIR / "goldens.json"))
    args = ap.parse_args()

    render, meta = transformers_renderer() if args.oracle == "transformers" else jinja2_replica_renderer()
    meta["python"] = platform.python_version()
    conversations = json.loads((TEMPLATE_DIR / "conversations.json").read_text(encoding="utf-8"))["conversations"]
    templates = {p.name[: -len("_chat_template.jinja")]: p.read_text(encoding="utf-8")
                 for p in sorted(TEMPLATE_DIR.glob("*_chat_template.jinja"))}
    if not templates:
        sys.exit(f"no templates in {TEMPLATE_DIR}")

    goldens = {"_meta": meta}
    for name, template in templates.items():
        goldens[name] = {}
        n_text = n_err = 0
        for conv in conversations:
            try:
                ctx, cont = request_to_context(conv["request"])
                goldens[name][conv["id"]] = {"text": render(template, ctx, cont)}
                n_text += 1
            except Exception as e:  # the golden is the error itself
                goldens[name][conv["id"]] = {"error": str(e), "error_type": type(e).__name__}
                n_err += 1
        print(f"{name:10s} {n_text:3d} rendered, {n_err:3d} errors")
    Path(args.out).write_text(json.dumps(goldens, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(templates)} templates x {len(conversations)} conversations; oracle: {meta['oracle']})")


if __name__ == "__main__":
    main()
