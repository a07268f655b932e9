"""What a person using a plain OpenAI client reads: the `content` of a streamed answer that ran
a workflow, and of a whole and a streamed answer that only created one. Prints them as one
JSON object. Usage: openai_readable.py BASE_URL"""

import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed")
MODEL = "kubiya-workflow-agent"


def streamed(prompt):
    text = ""
    for chunk in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    return text


ran = streamed("check the system load and run it")
created = client.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": "create a workflow that checks disk space"}]
).choices[0].message.content
created_streamed = streamed("create a workflow that checks disk space")

print(json.dumps({"ran": ran, "created": created, "created_streamed": created_streamed}))
