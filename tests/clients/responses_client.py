"""Reads /v1/responses with the official `openai` Python package — a whole answer, a stream,
a turn continued by `previous_response_id`, a retrieve — and validates every response
object and streamed event against the Open Responses specification's published types
(`openresponses-types`). Prints what it saw as one JSON object. Usage: responses_client.py BASE_URL"""

import json
import sys

import openresponses_types as spec
from openai import OpenAI

from validate_responses import validate_event

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed")
MODEL = "kubiya-workflow-agent"

def valid_response(response):
    data = response.model_dump(mode="json", exclude_unset=False) if hasattr(response, "model_dump") else response
    spec.ResponseResource.model_validate(data)
    return data


whole = client.responses.create(model=MODEL, input="Create a workflow that checks disk usage")
valid_response(whole)

types = []
sequence = []
streamed_text = ""
completed = None
with client.responses.create(model=MODEL, input="Check the health of this system and run it", stream=True) as stream:
    for event in stream:
        data = event.model_dump(mode="json")
        validate_event(data)
        types.append(data["type"])
        sequence.append(data["sequence_number"])
        if data["type"] == "response.output_text.delta":
            streamed_text += data["delta"]
        if data["type"] == "response.completed":
            completed = data["response"]

followup = client.responses.create(
    model=MODEL, input="Now back up my project directory", previous_response_id=whole.id
)
valid_response(followup)
retrieved = client.responses.retrieve(whole.id)
valid_response(retrieved)
try:
    client.responses.create(model=MODEL, input="hi", previous_response_id="resp_missing")
    missing = None
except Exception as exc:  # the SDK's own exception class tells how it read our error
    missing = {"class": type(exc).__name__, "status": getattr(exc, "status_code", None)}

print(json.dumps({
    "whole": {"id": whole.id, "status": whole.status, "text": whole.output_text,
              "usage": whole.usage.model_dump(), "output_types": [item.type for item in whole.output]},
    "stream": {"types": types, "sequence": sequence, "text": streamed_text,
               "completed_text": completed["output"][0]["content"][0]["text"],
               "output_types": [item["type"] for item in completed["output"]],
               "events": completed.get("x_kubiya", {}).get("events", [])},
    "followup": {"text": followup.output_text, "previous": followup.previous_response_id,
                 "session": (followup.model_extra or {}).get("x_kubiya", {}).get("session_id"),
                 "first_session": (whole.model_extra or {}).get("x_kubiya", {}).get("session_id")},
    "retrieved": {"id": retrieved.id, "text": retrieved.output_text},
    "missing": missing,
}))
