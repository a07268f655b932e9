//! `llm_completion` and `agent` steps on the local runner, answered by the server's own
//! provider (a mock speaking OpenAI's stream): the prompt reaches the model with the step's
//! values substituted, the answer is the step's output, and later steps read it.

use serde_json::json;

use crate::helpers::spawn_app_against;
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream};
use crate::sse::kinds as types;

#[actix_rt::test]
async fn llm_completion_and_agent_steps_ask_the_configured_provider() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("{\"severity\": \"low\"}")),
        Reply::sse(openai_text_stream("Restart the pod.")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let workflow = json!({"name": "triage", "params": {"SERVICE": "checkout"}, "steps": [
        {"name": "classify", "output": "CLASS", "executor": {"type": "llm_completion", "config": {
            "model": "gpt-4o", "system_prompt": "You classify incidents.",
            "prompt": "Classify the incident of ${SERVICE}", "json_mode": true, "max_tokens": 100000}}},
        {"name": "advise", "output": "ADVICE", "executor": {"type": "agent", "config": {
            "agent_name": "sre", "message": "What should we do about ${CLASS}?",
            "ai_instructions": "You are an SRE."}}},
        {"name": "report", "command": "echo \"$CLASS / $ADVICE\""}]});
    let started = app.start_execution(json!({"workflow": workflow})).await;
    let (_, events) = app
        .read_events(started["events_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        types(&events),
        [
            "step_running classify",
            "step_complete classify",
            "step_running advise",
            "step_complete advise",
            "step_running report",
            "step_output report",
            "step_complete report",
            "workflow_complete"
        ],
        "{events:?}"
    );
    assert_eq!(
        events[6].data["output"],
        "{\"severity\": \"low\"} / Restart the pod."
    );

    let requests = mock.requests();
    let first = &requests[0].body;
    assert_eq!(first["messages"][0]["role"], "system");
    let system = first["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You classify incidents."), "{system}");
    assert!(system.contains("JSON"), "{system}");
    assert_eq!(
        first["messages"][1]["content"],
        "Classify the incident of checkout"
    );
    // The step may lower the answer's budget, never raise it.
    assert_eq!(first["max_tokens"], 4096);
    assert_eq!(first["tools"], serde_json::Value::Null);
    let second = &requests[1].body;
    assert_eq!(second["messages"][0]["content"], "You are an SRE.");
    assert_eq!(
        second["messages"][1]["content"],
        "What should we do about {\"severity\": \"low\"}?"
    );
}

#[actix_rt::test]
async fn model_steps_are_refused_when_the_server_gives_them_no_model() {
    let mock = MockUpstream::start(vec![]);
    let app = spawn_app_against(&mock.base(), |settings| {
        settings.runner.local.model_max_tokens = 0;
    })
    .await;
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/executions",
            json!({"workflow": {"name": "w", "steps": [{"name": "ask",
                "executor": {"type": "llm_completion", "config": {"prompt": "hi"}}}]}})
            .to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no model for workflow steps"),
        "{body}"
    );
    assert!(mock.requests().is_empty());
}
