//! Plan → approve → act in the text protocols: with `require_approval` (or the server's
//! `agent.require_approval`), the agent asks in plain text before a run and the next message
//! answers; a plain "yes" runs the workflow it planned, "no" declines. (The chat UI
//! protocol's approval round is in `ui_chat`.)

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};
use crate::responses::{create, validate_with_spec, whole};

#[actix_rt::test]
async fn in_plain_text_the_agent_asks_before_a_run_and_a_yes_runs_it() {
    let app = spawn_app().await;
    let model = "kubiya-workflow-agent";
    let ask = json!({"model": model, "require_approval": true,
        "input": "Check the health of this system and run it"});
    let (status, asked) = create(&app, ask, "none").await;
    assert_eq!(status, 200, "{asked}");
    let text = asked["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("[Approval needed]"), "{text}");
    assert!(!text.contains("▶"), "nothing ran yet: {text}");

    let (_, declined) = create(
        &app,
        json!({"model": model, "input": "no, not now", "previous_response_id": asked["id"]}),
        "none",
    )
    .await;
    let text = declined["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("I did not run the workflow"), "{text}");
    assert!(!text.contains("▶"), "{text}");

    let (_, asked_again) = create(
        &app,
        json!({"model": model, "require_approval": true,
            "input": "Check the health of this system and run it",
            "previous_response_id": declined["id"]}),
        "none",
    )
    .await;
    let (_, ran) = create(
        &app,
        json!({"model": model, "input": "yes", "previous_response_id": asked_again["id"]}),
        "none",
    )
    .await;
    let text = ran["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("✓ summary"), "{text}");
    assert!(text.contains("finished with status success"), "{text}");
    let answers = [&asked, &declined, &asked_again, &ran].map(whole).to_vec();
    assert_eq!(validate_with_spec(answers).await, ["completed"; 4]);
}

#[actix_rt::test]
async fn the_server_setting_makes_approval_the_default_for_chat_completions_too() {
    let app = spawn_app_with(|settings| settings.agent.require_approval = true).await;
    let ask = |extra: Value| {
        let mut body = json!({"model": "kubiya-workflow-agent",
            "messages": [{"role": "user", "content": "Check the health of this system and run it"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, headers, body) = app
        .post_raw("/v1/chat/completions", &ask(json!({})), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("[Approval needed]") && !content.contains("▶"),
        "{content}"
    );
    let session = headers.get("x-session-id").unwrap().to_str().unwrap();
    let yes = json!({"model": "kubiya-workflow-agent", "session_id": session,
        "messages": [{"role": "user", "content": "yes"}]});
    let (_, _, body) = app.post_raw("/v1/chat/completions", &yes, &[]).await;
    assert!(body.contains("✓ summary"), "{body}");

    let (_, _, body) = app
        .post_raw(
            "/v1/chat/completions",
            &ask(json!({"require_approval": false})),
            &[],
        )
        .await;
    assert!(
        body.contains("✓ summary") && !body.contains("Approval needed"),
        "{body}"
    );
}
