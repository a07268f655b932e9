"""Validates what the server sent on /v1/responses against the Open Responses specification's
published types (`openresponses-types`): a JSON file (the argument) holding an array of
{"kind": "response", "body": {...}} (a whole answer or a GET) and {"kind": "stream", "body":
"<SSE text>"} (every event: `event:` equal to its `type`, `sequence_number` counting from 0,
one terminal event last, then `data: [DONE]`). Prints {"validated": N, "terminal": [...]}."""

import json
import sys

import openresponses_types as spec

EVENTS = {
    "response.created": spec.ResponseCreatedStreamingEvent,
    "response.in_progress": spec.ResponseInProgressStreamingEvent,
    "response.output_item.added": spec.ResponseOutputItemAddedStreamingEvent,
    "response.content_part.added": spec.ResponseContentPartAddedStreamingEvent,
    "response.output_text.delta": spec.ResponseOutputTextDeltaStreamingEvent,
    "response.output_text.done": spec.ResponseOutputTextDoneStreamingEvent,
    "response.content_part.done": spec.ResponseContentPartDoneStreamingEvent,
    "response.output_item.done": spec.ResponseOutputItemDoneStreamingEvent,
    "response.completed": spec.ResponseCompletedStreamingEvent,
    "response.failed": spec.ResponseFailedStreamingEvent,
    "response.incomplete": spec.ResponseIncompleteStreamingEvent,
}
TERMINAL = {"response.completed", "response.failed", "response.incomplete"}


def stream(text):
    blocks = [block for block in text.split("\n\n") if block.strip() and not block.startswith(":")]
    assert blocks[-1] == "data: [DONE]", blocks[-1]
    events = []
    for block in blocks[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        event = json.loads(lines[1][len("data: "):])
        assert lines[0][len("event: "):] == event["type"], block
        validate_event(event)
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] in TERMINAL and not any(e["type"] in TERMINAL for e in events[:-1])
    return len(events), events[-1]["type"]


def validate_event(event):
    """One streamed event: its own type, and the response it carries."""
    EVENTS[event["type"]].model_validate(event)
    if "response" in event:
        spec.ResponseResource.model_validate(event["response"])


def main():
    validated = 0
    terminal = []
    with open(sys.argv[1]) as entries:
        entries = json.load(entries)
    for entry in entries:
        if entry["kind"] == "response":
            spec.ResponseResource.model_validate(entry["body"])
            validated += 1
            terminal.append(entry["body"]["status"])
        else:
            count, last = stream(entry["body"])
            validated += count
            terminal.append(last)
    print(json.dumps({"validated": validated, "terminal": terminal}))


if __name__ == "__main__":
    main()
