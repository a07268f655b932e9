//! The original SDK's own example workflows (its serialized examples A, C and D) run end to
//! end on the local runner over HTTP. A runs as written. C and D use executors only the
//! platform has (`tool`, `inline_agent`) and a public URL; those steps are swapped for plain
//! commands, intervals are shortened, and everything else — secrets, sub-workflows, repeat
//! policies, `signalOnStop`, `files`, agent and LLM steps, a parallel fan-out — runs as
//! written, against a mock model and a secrets file.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_against};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream};
use crate::sse::kinds as types;

async fn run(app: &TestApp, workflow: Value) -> (Vec<String>, Value) {
    let started = app.start_execution(json!({"workflow": workflow})).await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let (_, events) = app
        .read_events(started["events_url"].as_str().unwrap(), None)
        .await;
    let (_, _, execution) = app.get_json(&format!("/v1/executions/{id}")).await;
    (types(&events), execution)
}

fn step<'a>(execution: &'a Value, name: &str) -> &'a Value {
    execution["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {execution}"))
}

#[actix_rt::test]
async fn the_originals_examples_run_on_the_local_runner() {
    let dir =
        std::env::temp_dir().join(format!("kubiya-examples-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = dir.join("secrets.json");
    std::fs::write(&secrets, r#"{"GH_TOKEN": "ghp-example-token"}"#).unwrap();
    std::fs::write(
        dir.join("other-workflow.yaml"),
        "name: other-workflow\nparams:\n  A: \"0\"\nsteps:\n  - name: echo-a\n    command: echo \"A is $A\"\n    output: A_SEEN\n",
    )
    .unwrap();
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("hello from my-agent")),
        Reply::sse(openai_text_stream("{\"summary\": \"all good\"}")),
    ]);
    let workflows_dir = dir.to_string_lossy().into_owned();
    let secrets_file = secrets.to_string_lossy().into_owned();
    let app = spawn_app_against(&mock.base(), move |settings| {
        settings.runner.local.workflows_dir = workflows_dir;
        settings.runner.local.secrets_file = secrets_file;
    })
    .await;

    // A. Simple chain with params/env, as written.
    let (events, execution) = run(
        &app,
        json!({"name":"hello-world",
         "steps":[
           {"name":"print-hello","command":"echo 'Hello ${NAME}'","executor":{"type":"command","config":{}}},
           {"name":"second","command":"echo done","executor":{"type":"command","config":{}}}],
         "description":"Simple hello world","runner":"local",
         "params":{"NAME":"world"},"env":{"LOG_LEVEL":"info"}}),
    )
    .await;
    assert_eq!(execution["status"], "success", "{execution}");
    // Each step's start, the line it printed, its end; then the run's end.
    assert_eq!(events.len(), 7, "{events:?}");
    // Single quotes keep `${NAME}` from the shell: the value arrives through the environment.
    assert_eq!(step(&execution, "print-hello")["output"], "Hello world");

    // C. A secret step, a sub-workflow, a repeat policy with signalOnStop, files; the
    // inline docker tool is platform-only, so `test-api` is a command here.
    let (events, execution) = run(
        &app,
        json!({"name":"db-test",
         "steps":[
           {"name":"test-api","output":"TEST_RESULT","command":"cat config.json"},
           {"name":"fetch-token","type":"get_secret","secret_name":"GH_TOKEN","depends":["test-api"]},
           {"name":"child","run":"other-workflow","params":"A=1","depends":["test-api"]},
           {"name":"poll","command":"echo healthy","executor":{"type":"command","config":{}},
            "repeatPolicy":{"intervalSec":1,"limit":2},"depends":["test-api"],"retries":2,"signalOnStop":"SIGINT"}],
         "description":"API test with bounded services","runner":"local","type":"graph",
         "schedule":"0 2 * * *","queue":"q1","maxActiveRuns":2,"tags":"ci,db",
         "mailOn":{"failure":true,"success":false},"files":{"config.json":"{\"k\": 1}"}}),
    )
    .await;
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(step(&execution, "test-api")["output"], "{\"k\": 1}");
    assert_eq!(step(&execution, "fetch-token")["output"], "***");
    assert_eq!(
        step(&execution, "child")["output"],
        "{\"A_SEEN\":\"A is 1\"}"
    );
    assert!(
        events.contains(&"step_complete child/echo-a".to_owned()),
        "{events:?}"
    );
    let poll_runs = events
        .iter()
        .filter(|event| *event == "step_complete poll")
        .count();
    assert_eq!(poll_runs, 2, "{events:?}");
    assert!(!execution.to_string().contains("ghp-example-token"));

    // D. Agent and LLM steps through the server's model, and the parallel step of the
    // DSL's `Step.parallel(items, max)`; `tool`, `inline_agent` and the public URL are not
    // for a local runner.
    let (_, execution) = run(
        &app,
        json!({"name":"agent-wf","type":"graph","steps":[
          {"name":"ask","output":"ANSWER","executor":{"type":"agent","config":{"agent_name":"my-agent","message":"hi","runners":["r1"],"llm_model":"gpt-4o"}}},
          {"name":"llm","depends":["ask"],"executor":{"type":"llm_completion","config":{"model":"gpt-4o","evaluate":true,"prompt":"Summarize ${ANSWER}","json_mode":true}}},
          {"name":"fan","command":"echo item ${ITEM}","parallel":{"items":["a","b","c"],"maxConcurrent":2}}]}),
    )
    .await;
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(step(&execution, "ask")["output"], "hello from my-agent");
    assert_eq!(
        step(&execution, "llm")["output"],
        "{\"summary\": \"all good\"}"
    );
    assert_eq!(
        step(&execution, "fan")["output"],
        "[\"item a\",\"item b\",\"item c\"]"
    );
    assert_eq!(
        mock.requests()[1].body["messages"][1]["content"],
        "Summarize hello from my-agent"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
