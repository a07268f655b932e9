"""OpenTelemetry traces: the server binary exports spans over OTLP/HTTP to a receiver run by
the test (it decodes the protobuf export requests with the official OTLP types). A chat
through a streaming OpenAI-compatible upstream and a workflow execution produce the spans of
an HTTP request, its turn, each model call (GenAI attributes, open for the whole stream),
each tool call, the execution and its steps, in that parent-child structure, continuing the
caller's `traceparent`."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from conftest import wait_until

# The caller's trace: the server's spans must join it.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
STREAM_GAP = 0.3


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces with protobuf bodies."""

    def __init__(self):
        self.spans = []
        self.resources = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces", self.path
                assert self.headers["Content-Type"] == "application/x-protobuf"
                export = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    for resource_spans in export.resource_spans:
                        receiver.resources.append(
                            {a.key: value(a.value) for a in resource_spans.resource.attributes})
                        for scope in resource_spans.scope_spans:
                            receiver.spans.extend(scope.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list:
        with self.lock:
            return [span for span in self.spans if span.name == name]

    def stop(self):
        self.server.shutdown()


def attributes(span) -> dict:
    return {a.key: value(a.value) for a in span.attributes}


class StreamingUpstream:
    """An OpenAI-compatible upstream that answers every chat with a text streamed in three
    chunks STREAM_GAP apart, then a usage chunk."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(payload):
                    data = f"data: {payload}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                        "model": "mock-model-1"}
                for word in ["Hello", " from", " upstream"]:
                    send(json.dumps({**base, "choices": [
                        {"index": 0, "delta": {"content": word}, "finish_reason": None}]}))
                    time.sleep(STREAM_GAP)
                send(json.dumps({**base, "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop"}]}))
                send(json.dumps({**base, "choices": [],
                                 "usage": {"prompt_tokens": 42, "completion_tokens": 3,
                                           "total_tokens": 45}}))
                send("[DONE]")
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def upstream():
    upstream = StreamingUpstream()
    yield upstream
    upstream.stop()


def otel_env(receiver) -> dict:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def test_a_streamed_model_call_is_one_span_inside_the_turn_inside_the_request(
        start_server, receiver, upstream):
    server = start_server(
        ["--provider", "openai", "--model", "mock-model-1",
         "--base-url", f"http://127.0.0.1:{upstream.port}/v1", "--api-key", "sk-test"],
        otel_env(receiver))
    server.wait_live()
    body = {"model": "kubiya-workflow-agent", "stream": True,
            "messages": [{"role": "user", "content": "say hello"}]}
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    with requests.post(f"{server.base}/v1/chat/completions", json=body, stream=True, timeout=30,
                       headers={"traceparent": traceparent}) as answer:
        assert answer.status_code == 200
        text = "".join(answer.iter_content(decode_unicode=True))
    assert "upstream" in text and "[DONE]" in text

    model = wait_until(lambda: receiver.named("chat mock-model-1"), "the model call's span")[0]
    turn = wait_until(lambda: receiver.named("invoke_agent kubiya-workflow-agent"), "the turn's span")[0]
    http = wait_until(lambda: receiver.named("POST /v1/chat/completions"), "the request's span")[0]

    # One trace, the caller's: request -> turn -> model call.
    assert {s.trace_id.hex() for s in (http, turn, model)} == {CALLER_TRACE}
    assert http.parent_span_id.hex() == CALLER_SPAN
    assert turn.parent_span_id == http.span_id
    assert model.parent_span_id == turn.span_id

    gen_ai = attributes(model)
    assert gen_ai["gen_ai.operation.name"] == "chat"
    assert gen_ai["gen_ai.system"] == "openai"
    assert gen_ai["gen_ai.request.model"] == "mock-model-1"
    assert gen_ai["gen_ai.usage.input_tokens"] == 42
    assert gen_ai["gen_ai.usage.output_tokens"] == 3
    assert gen_ai["gen_ai.response.finish_reasons"] == "stop"
    # The span lasts as long as the stream: three chunks STREAM_GAP apart.
    assert (model.end_time_unix_nano - model.start_time_unix_nano) / 1e9 >= 3 * STREAM_GAP * 0.9
    assert model.kind == model.SPAN_KIND_CLIENT
    assert http.kind == http.SPAN_KIND_SERVER
    assert attributes(http)["http.response.status_code"] == 200
    assert attributes(turn)["gen_ai.usage.input_tokens"] == 42
    assert any(r.get("service.name") == "kubiya-agent" for r in receiver.resources)


def test_tool_calls_executions_and_steps_nest_under_the_turn(start_server, receiver):
    server = start_server([], {**otel_env(receiver), "KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED": "true"})
    server.wait_live()
    answer = requests.post(f"{server.base}/compose", timeout=60, json={
        "task": "Say hello", "mode": "act", "stream": False, "parameters": {"NAME": "team"}})
    assert answer.status_code == 200, answer.text

    def execution_spans():
        executions = [s for s in receiver.spans if s.name.startswith("workflow ")]
        turns = receiver.named("invoke_agent kubiya-workflow-agent")
        return (executions, turns) if executions and turns else None

    (execution,), (turn,) = wait_until(execution_spans, "the execution's span")
    tools = {attributes(s)["gen_ai.tool.name"]: s for s in receiver.spans
             if s.name.startswith("execute_tool ")}
    run_tool = tools["execute_workflow"]
    assert run_tool.parent_span_id == turn.span_id
    assert attributes(run_tool)["gen_ai.operation.name"] == "execute_tool"
    assert execution.parent_span_id == run_tool.span_id
    assert attributes(execution)["kubiya.workflow.status"] == "success"

    steps = wait_until(lambda: [s for s in receiver.spans if s.name.startswith("step ")], "step spans")
    assert steps and all(s.parent_span_id == execution.span_id for s in steps)
    assert all(attributes(s)["kubiya.step.status"] == "success" for s in steps)
    models = receiver.named("chat kubiya-offline-planner")
    assert models and all(s.parent_span_id == turn.span_id for s in models)
    assert attributes(models[0])["gen_ai.system"] == "offline"
    http = receiver.named("POST /compose")[0]
    assert turn.parent_span_id == http.span_id
    assert len({s.trace_id for s in receiver.spans}) == 1


def test_an_execution_started_over_http_is_a_child_of_its_request(start_server, receiver):
    server = start_server([], {**otel_env(receiver), "KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED": "true"})
    server.wait_live()
    started = requests.post(f"{server.base}/v1/executions", timeout=10, json={"workflow": {
        "name": "two-steps", "steps": [{"name": "one", "command": "true"},
                                       {"name": "two", "command": "false"}]}})
    assert started.status_code == 202, started.text
    (execution,) = wait_until(lambda: receiver.named("workflow two-steps"), "the execution's span")
    http = receiver.named("POST /v1/executions")[0]
    assert execution.parent_span_id == http.span_id
    assert execution.status.code == execution.status.STATUS_CODE_ERROR
    steps = {attributes(s)["kubiya.step.name"]: s for s in receiver.spans if s.name.startswith("step ")}
    assert attributes(steps["one"])["kubiya.step.status"] == "success"
    assert attributes(steps["two"])["kubiya.step.status"] == "failed"
    assert steps["two"].status.code == steps["two"].status.STATUS_CODE_ERROR


@pytest.mark.parametrize("traceparent", [
    "garbage",
    "00-" + "0" * 32 + "-" + "0" * 16 + "-01",            # all-zero ids are invalid
    "ff-" + CALLER_TRACE + "-" + CALLER_SPAN + "-01",      # version ff is forbidden
    "00-" + "z" * 32 + "-" + CALLER_SPAN + "-01",
    "00-" + CALLER_TRACE + "-" + CALLER_SPAN + "-01" + "-x" * 2000,
])
def test_a_forged_traceparent_starts_a_new_trace_and_harms_nothing(start_server, receiver, traceparent):
    server = start_server([], otel_env(receiver))
    server.wait_live()
    answer = requests.post(f"{server.base}/v1/chat/completions", timeout=30,
                           headers={"traceparent": traceparent, "tracestate": "k=" + "v" * 4000},
                           json={"model": "kubiya-workflow-agent",
                                 "messages": [{"role": "user", "content": "hello"}]})
    assert answer.status_code == 200, answer.text
    (http,) = wait_until(lambda: receiver.named("POST /v1/chat/completions"), "the request's span")
    assert http.parent_span_id == b"", "an invalid traceparent must not become a parent"
    assert http.trace_id.hex() not in (CALLER_TRACE, "0" * 32)


def test_an_unsupported_protocol_leaves_traces_off_with_a_warning(start_server, receiver):
    server = start_server([], {**otel_env(receiver), "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    server.wait_live()
    assert chat_ok(server)
    time.sleep(1.0)
    assert receiver.spans == []
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported" in server.logs()


def chat_ok(server) -> bool:
    return requests.post(f"{server.base}/v1/chat/completions", timeout=30, json={
        "model": "kubiya-workflow-agent",
        "messages": [{"role": "user", "content": "hello"}]}).status_code == 200


def test_traces_stay_off_when_the_sdk_is_disabled(start_server, receiver):
    server = start_server([], {**otel_env(receiver), "OTEL_SDK_DISABLED": "true"})
    server.wait_live()
    assert chat_ok(server)
    time.sleep(1.0)
    assert receiver.spans == []
    # Nor do trace spans reach the log lines.
    assert "invoke_agent" not in server.logs()
