"""Reads the server with the official `openai` Python package: a whole answer, a stream,
and a stream with usage. Prints what it saw as one JSON object. Usage: openai_client.py BASE_URL"""

import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed")
messages = [{"role": "user", "content": "say hello"}]

whole = client.chat.completions.create(model="kubiya-workflow-agent", messages=messages)
stream_text = ""
for chunk in client.chat.completions.create(model="kubiya-workflow-agent", messages=messages, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        stream_text += chunk.choices[0].delta.content
usage = None
finish = None
for chunk in client.chat.completions.create(
    model="kubiya-workflow-agent", messages=messages, stream=True, stream_options={"include_usage": True}
):
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
    if chunk.usage:
        usage = chunk.usage.model_dump()
models = [model.id for model in client.models.list()]
try:
    client.chat.completions.create(model="gpt-4o", messages=messages)
    error = None
except Exception as exc:  # the SDK's own exception class tells how it read our error
    error = {"class": type(exc).__name__, "status": getattr(exc, "status_code", None)}

print(json.dumps({
    "whole": whole.choices[0].message.content,
    "whole_usage": whole.usage.model_dump(),
    "stream": stream_text,
    "finish": finish,
    "usage": usage,
    "models": models,
    "error": error,
}))
