#!/usr/bin/env python3
"""Drives an OpenAI-compatible server with the official `openai` client.

Checks chat and completions, streaming and not, and prints one JSON line with what it saw.
Exits non-zero with a reason on the first wrong answer. Used by kvroute's end-to-end tests
against the simulator and the gateway.
"""
import argparse
import json
import sys

import openai


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:18001/v1")
    ap.add_argument("--model", default="meta-llama/Llama-3.2-3B-Instruct")
    ap.add_argument("--session-id", default=None)
    args = ap.parse_args()

    headers = {"x-session-id": args.session_id} if args.session_id else None
    client = openai.OpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=60,
                           default_headers=headers)
    system = "You are a careful assistant who answers in plain words. " * 40
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Name three colours."}]
    seen = {}

    chat = client.chat.completions.create(model=args.model, messages=messages, max_tokens=8, temperature=0)
    text = chat.choices[0].message.content
    if not text or chat.choices[0].finish_reason != "length" or chat.usage.completion_tokens != 8:
        fail(f"chat: unexpected answer {chat!r}")
    seen["chat_prompt_tokens"] = chat.usage.prompt_tokens

    again = client.chat.completions.create(model=args.model, messages=messages, max_tokens=8, temperature=0)
    details = again.usage.prompt_tokens_details
    cached = details.cached_tokens if details else None
    if cached is None or cached < 0.9 * again.usage.prompt_tokens:
        fail(f"chat: second identical request cached {cached} of {again.usage.prompt_tokens} tokens")
    seen["chat_cached_tokens"] = cached

    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(model=args.model, messages=messages, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta and c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    if "".join(pieces) != text:
        fail(f"chat stream text {''.join(pieces)!r} != non-stream text {text!r}")
    if usage is None or usage.completion_tokens != 8 or finish != "length":
        fail(f"chat stream: usage {usage!r}, finish {finish!r}")
    seen["chat_stream_chunks"] = len(pieces)

    comp = client.completions.create(model=args.model, prompt="The quick brown fox", max_tokens=5)
    ctext = comp.choices[0].text
    if not ctext or comp.usage.completion_tokens != 5:
        fail(f"completions: unexpected answer {comp!r}")
    pieces = []
    for chunk in client.completions.create(model=args.model, prompt="The quick brown fox", max_tokens=5, stream=True):
        for c in chunk.choices:
            pieces.append(c.text or "")
    if "".join(pieces) != ctext:
        fail(f"completions stream text {''.join(pieces)!r} != {ctext!r}")

    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=1)
        fail("an unknown model was accepted")
    except openai.NotFoundError as e:
        seen["unknown_model_status"] = e.status_code
    except openai.BadRequestError as e:
        seen["unknown_model_status"] = e.status_code

    models = client.models.list()
    seen["models"] = [m.id for m in models.data]
    if args.model not in seen["models"]:
        fail(f"model list {seen['models']} lacks {args.model}")
    print(json.dumps({"ok": True, **seen}))


if __name__ == "__main__":
    main()
