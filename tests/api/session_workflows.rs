//! Sub-workflows from the session: a workflow the agent made earlier in the conversation is
//! callable by name from a later workflow's `run` step, with no workflows directory
//! configured; another session cannot call it.

use serde_json::{Value, json};

use crate::helpers::spawn_app_against;
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream, openai_tool_call_stream};

fn call(id: &str, tool: &str, workflow: &Value) -> Reply {
    Reply::sse(openai_tool_call_stream(
        id,
        tool,
        &json!({"workflow": workflow}),
    ))
}

/// The `execute_workflow` tool result among a whole answer's events.
fn execute_result(answer: &Value) -> &Value {
    answer["x_kubiya"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "tool_result" && event["name"] == "execute_workflow")
        .unwrap_or_else(|| panic!("{answer}"))
}

#[actix_rt::test]
async fn a_run_step_calls_a_workflow_made_earlier_in_the_session() {
    let greet = json!({"name": "greet", "params": {"WHO": "nobody"},
        "steps": [{"name": "hello", "command": "echo \"hello $WHO\"", "output": "GREETING"}]});
    let parent = json!({"name": "parent",
        "steps": [{"name": "child", "run": "greet", "params": "WHO=team"}]});
    let mock = MockUpstream::start(vec![
        call("call_1", "validate_workflow", &greet),
        Reply::sse(openai_text_stream("Made greet.")),
        call("call_2", "execute_workflow", &parent),
        Reply::sse(openai_text_stream("Ran it.")),
        // Another session asks for the same.
        call("call_3", "execute_workflow", &parent),
        Reply::sse(openai_text_stream("Tried.")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let ask = |session: &str, text: &str| {
        json!({"model": "kubiya-workflow-agent", "session_id": session,
               "messages": [{"role": "user", "content": text}]})
    };
    let (status, first) = app
        .send_json(
            "POST",
            "/v1/chat/completions",
            ask("s-1", "make a greeting workflow").to_string(),
        )
        .await;
    assert_eq!(status, 200, "{first}");

    let (_, second) = app
        .send_json(
            "POST",
            "/v1/chat/completions",
            ask("s-1", "now run parent").to_string(),
        )
        .await;
    let events = second["x_kubiya"]["events"].as_array().unwrap();
    let result = execute_result(&second);
    assert_eq!(result["result"]["status"], "success", "{second}");
    assert!(
        events.iter().any(|event| event["type"] == "step_complete"
            && event["step"] == "child/hello"
            && event["output"] == "hello team"),
        "{second}"
    );

    let (_, other) = app
        .send_json(
            "POST",
            "/v1/chat/completions",
            ask("s-2", "run parent").to_string(),
        )
        .await;
    let result = execute_result(&other);
    assert!(
        result["result"].to_string().contains("workflows directory"),
        "another session's workflow is not callable: {other}"
    );
}
