//! Tests of workflow validation: each kind of problem with its path, raw type errors, the
//! `${VAR}` rule, and normalisation.

use serde_json::{Value, json};

use super::error::ValidationError;
use super::model::{Depends, Workflow};
use super::validate::{normalised, validate, validate_text, validate_value};

fn errors_of(document: Value) -> Vec<ValidationError> {
    match validate_value(&document) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

/// The one error at `path`, failing with the whole list otherwise.
fn error_at(errors: &[ValidationError], path: &str) -> String {
    let found: Vec<&ValidationError> = errors.iter().filter(|error| error.path == path).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error at {path:?}, got {errors:#?}"
    );
    found[0].message.clone()
}

fn paths(errors: &[ValidationError]) -> Vec<&str> {
    errors.iter().map(|error| error.path.as_str()).collect()
}

#[test]
fn examples_a_and_b_are_valid() {
    for example in [
        super::model::tests::example_a(),
        super::model::tests::example_b(),
    ] {
        assert_eq!(errors_of(example), Vec::new());
    }
}

#[test]
fn examples_c_and_d_reference_undeclared_variables() {
    let errors = errors_of(super::model::tests::example_c());
    let message = error_at(&errors, "steps[0].executor.config.args.url");
    assert!(message.contains("${API_URL} is not defined"), "{message}");
    let errors = errors_of(super::model::tests::example_d());
    assert_eq!(
        paths(&errors),
        [
            "steps[1].executor.config.prompt",
            "steps[4].executor.config.message"
        ]
    );
}

#[test]
fn a_blank_name_and_no_steps_are_reported() {
    let errors = errors_of(json!({"name":"  ","steps":[]}));
    assert!(error_at(&errors, "name").contains("non-blank"));
    assert!(error_at(&errors, "steps").contains("at least one step"));
    let errors = errors_of(json!({}));
    assert_eq!(paths(&errors), ["name", "steps"]);
}

#[test]
fn step_names_must_be_present_and_unique() {
    let errors = errors_of(json!({"name":"w","steps":[
        {"name":"a","command":"true"},{"name":"","command":"true"},{"name":"a","command":"true"}]}));
    assert!(error_at(&errors, "steps[1].name").contains("non-blank"));
    let message = error_at(&errors, "steps[2].name");
    assert!(
        message.contains("duplicate step name 'a'") && message.contains("steps[0]"),
        "{message}"
    );
}

#[test]
fn unknown_dependencies_name_the_exact_entry() {
    let errors = errors_of(json!({"name":"w","type":"graph","steps":[
        {"name":"a","command":"true"},
        {"name":"b","command":"true","depends":["a","nope"]},
        {"name":"c","command":"true","depends":"missing"}]}));
    let message = error_at(&errors, "steps[1].depends[1]");
    assert!(
        message.contains("unknown step 'nope'") && message.contains("'a', 'b', 'c'"),
        "{message}"
    );
    assert!(error_at(&errors, "steps[2].depends").contains("unknown step 'missing'"));
}

#[test]
fn chain_workflows_may_not_depend_forward_but_graphs_may() {
    let steps =
        json!([{"name":"a","command":"true","depends":["b"]},{"name":"b","command":"true"}]);
    let errors = errors_of(json!({"name":"w","steps":steps}));
    let message = error_at(&errors, "steps[0].depends[0]");
    assert!(
        message.contains("declared later") && message.contains("\"graph\""),
        "{message}"
    );
    assert_eq!(
        errors_of(json!({"name":"w","type":"graph","steps":steps})),
        Vec::new()
    );
}

#[test]
fn cycles_are_named() {
    let errors = errors_of(json!({"name":"w","type":"graph","steps":[
        {"name":"a","command":"true","depends":["c"]},
        {"name":"b","command":"true","depends":["a"]},
        {"name":"c","command":"true","depends":["b"]},
        {"name":"d","command":"true","depends":["d"]}]}));
    let message = error_at(&errors, "steps[0].depends");
    assert!(message.contains("a -> c -> b -> a"), "{message}");
    assert!(error_at(&errors, "steps[3].depends[0]").contains("depends on itself"));
}

#[test]
fn a_step_needs_something_to_run() {
    let errors = errors_of(json!({"name":"w","steps":[{"name":"idle","description":"nothing"}]}));
    let message = error_at(&errors, "steps[0]");
    assert!(
        message.contains("nothing to run") && message.contains("\"command\""),
        "{message}"
    );
    // A sub-workflow or a platform step type counts as something to run.
    let errors = errors_of(json!({"name":"w","steps":[
        {"name":"child","run":"other"},{"name":"secret","type":"get_secret","secret_name":"X"}]}));
    assert_eq!(errors, Vec::new());
}

#[test]
fn executors_need_their_config_keys() {
    let errors = errors_of(json!({"name":"w","type":"graph","steps":[
        {"name":"docker","executor":{"type":"docker","config":{}}},
        {"name":"http","executor":{"type":"http","config":{"method":"GET"}}},
        {"name":"ssh","executor":{"type":"ssh","config":{}}},
        {"name":"tool","executor":{"type":"tool","config":{"args":{}}}},
        {"name":"agent","executor":{"type":"agent","config":{"message":"hi"}}},
        {"name":"inline","executor":{"type":"inline_agent","config":{}}},
        {"name":"llm","executor":{"type":"llm_completion","config":{"model":"gpt-4o"}}},
        {"name":"command","executor":{"type":"command","config":{}}},
        {"name":"weird","executor":{"type":"teleport","config":{}}},
        {"name":"ssh-ok","command":"uptime","executor":{"type":"ssh","config":{"host":"h"}}}]}));
    assert_eq!(
        paths(&errors),
        [
            "steps[0].executor.config.image",
            "steps[1].executor.config.url",
            "steps[2].executor.config.host",
            "steps[2].executor.config.command",
            "steps[3].executor.config",
            "steps[4].executor.config.agent_name",
            "steps[5].executor.config.message",
            "steps[5].executor.config.agent",
            "steps[6].executor.config.prompt",
            "steps[7].command",
            "steps[8].executor.type",
        ]
    );
    assert!(
        errors[0]
            .message
            .contains("docker executor needs config.image")
    );
    assert!(
        errors[10]
            .message
            .contains("unknown executor type \"teleport\"")
    );
}

#[test]
fn tool_services_are_checked_like_the_original() {
    let errors = errors_of(
        json!({"name":"w","steps":[{"name":"t","executor":{"type":"tool","config":{
        "tool_def":{"name":"x","type":"docker","image":"alpine","content":"true","with_services":[
            {"name":"db","image":"postgres","exposed_ports":[5432]},
            {"name":"db","exposed_ports":[70000]}]}}}}]}),
    );
    assert_eq!(
        paths(&errors),
        [
            "steps[0].executor.config.tool_def.with_services[1].name",
            "steps[0].executor.config.tool_def.with_services[1].image",
            "steps[0].executor.config.tool_def.with_services[1].exposed_ports",
        ]
    );
}

#[test]
fn bad_types_are_reported_with_paths_alongside_other_problems() {
    let errors = errors_of(json!({
    "name": 7,
    "timeout": "ten",
    "type": "dag",
    "tags": [1],
    "env": {"A": {"nested": true}},
    "steps": [
        {"name":"a","command":"true","retryPolicy":{"limit":"x","intervalSec":-1},"timeout":[1]},
        {"name":"b","command":"true","depends":5,"preconditions":"x"},
        "not-a-step",
        {"name":"c","executor":"docker"},
        {"name":"d","executor":{"config":{}}},
        {"name":"e","command":"true","depends":["ghost"],"continueOn":{"failure":"yes"}}
    ]}));
    // In the model's order: the document's fields, each step's inside its place.
    assert_eq!(
        paths(&errors),
        [
            "name",
            "steps[0].retryPolicy.limit",
            "steps[0].retryPolicy.intervalSec",
            "steps[0].timeout",
            "steps[1].depends",
            "steps[1].preconditions",
            "steps[2]",
            "steps[3].executor",
            "steps[4].executor.type",
            "steps[5].continueOn.failure",
            "type",
            "env.A",
            "timeout",
            "tags[0]",
            // Semantic problems are still found next to the type errors.
            "steps[5].depends[0]",
        ]
    );
    for (path, message) in [
        (
            "timeout",
            "\"timeout\" must be a number of seconds (0 or more), not \"ten\"",
        ),
        (
            "steps[0].retryPolicy.intervalSec",
            "\"intervalSec\" must be a number of seconds (0 or more), not -1",
        ),
        (
            "steps[2]",
            "each item of \"steps\" must be an object, not \"not-a-step\"",
        ),
        (
            "steps[4].executor.type",
            "\"type\" is missing; it must be a string such as \"command\", \"docker\", \"http\" or \"agent\"",
        ),
        (
            "env.A",
            "\"A\" must be a string, number or boolean, not an object",
        ),
    ] {
        assert_eq!(error_at(&errors, path), message);
    }
    let message = error_at(&errors, "type");
    assert!(
        message.contains("\"chain\" or \"graph\" (how steps without \"depends\" are ordered")
            && message.ends_with("not \"dag\""),
        "{message}"
    );
    // A step whose value was unreadable is not also reported under a stand-in name.
    assert!(
        !error_at(&errors, "steps[5].depends[0]").contains("''"),
        "{errors:#?}"
    );
}

#[test]
fn steps_that_are_not_a_list_are_one_error() {
    let errors = errors_of(json!({"name":"w","steps":{"a":{}}}));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        errors[0].message,
        "\"steps\" must be a list of step objects, not an object"
    );
    let errors = errors_of(json!(["not", "an", "object"]));
    assert_eq!(paths(&errors), [""]);
}

#[test]
fn references_must_resolve_within_the_rule() {
    let errors = errors_of(json!({"name":"w","type":"graph",
        "params":{"P":"1"},"env":{"E":"${P}-x","F":"${LATER}","LATER":"y"},
        "steps":[
            {"name":"a","command":"echo ${P} ${E} ${HOME} ${A_OUT}","output":"A_OUT"},
            {"name":"b","command":"echo ${A_OUT}","output":"B_OUT","depends":["a"]},
            {"name":"c","command":"echo ${B_OUT} ${A_OUT} ${S} ${N:-default}; X=1; echo ${X}",
             "depends":["b"],"env":{"S":"${P}","T":"${U}"}},
            {"name":"d","command":"echo ${B_OUT} ${NOPE}"}]}));
    assert!(error_at(&errors, "env.F").contains("${LATER} is not defined"));
    assert!(error_at(&errors, "steps[0].command").contains("output of step 'a' itself"));
    // `c` reaches A_OUT through b; S is its own env; N has a shell default; X is assigned.
    assert!(error_at(&errors, "steps[2].env.T").contains("${U} is not defined"));
    let about_d: Vec<&str> = errors
        .iter()
        .filter(|error| error.path == "steps[3].command")
        .map(|error| error.message.as_str())
        .collect();
    assert_eq!(about_d.len(), 2, "{errors:#?}");
    assert!(
        about_d[0].contains("add 'b' to its \"depends\""),
        "{}",
        about_d[0]
    );
    assert!(
        about_d[1].contains("${NOPE} is not defined"),
        "{}",
        about_d[1]
    );
    assert_eq!(errors.len(), 5, "{errors:#?}");
}

#[test]
fn chain_steps_see_outputs_of_earlier_steps() {
    let errors = errors_of(json!({"name":"w","steps":[
        {"name":"a","command":"echo hi","output":"GREETING"},
        {"name":"b","command":"true"},
        {"name":"c","command":"echo ${GREETING}","preconditions":[{"condition":"${GREETING}","expected":"hi"}]}],
        "handlerOn":{"exit":{"command":"echo ${GREETING}"}}}));
    assert_eq!(errors, Vec::new());
}

#[test]
fn invalid_output_and_env_names_are_reported() {
    let errors = errors_of(json!({"name":"w","env":{"1BAD":"x"},"steps":[
        {"name":"a","command":"true","output":"not a name","env":{"OK":"1","B-C":"2"}}]}));
    assert_eq!(
        paths(&errors),
        ["env.1BAD", "steps[0].output", "steps[0].env.B-C"]
    );
}

#[test]
fn text_documents_are_parsed_first() {
    let errors = validate_text("name: [broken").expect_err("bad YAML");
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0].message.starts_with("invalid YAML"),
        "{}",
        errors[0].message
    );
    let workflow =
        validate_text("name: ok\nsteps:\n  - name: a\n    command: echo hi\n").expect("valid");
    assert_eq!(workflow.steps[0].command.as_deref(), Some("echo hi"));
}

#[test]
fn normalising_makes_chain_dependencies_explicit() {
    let workflow = Workflow::from_value(json!({"name":"w","steps":[
        {"name":"a","command":"true"},{"name":"b","command":"true"},
        {"name":"c","command":"true","depends":"a"}]}))
    .expect("parses");
    let normal = normalised(&workflow);
    let depends: Vec<Option<&Depends>> = normal
        .steps
        .iter()
        .map(|step| step.depends.as_ref())
        .collect();
    assert_eq!(
        depends,
        [
            None,
            Some(&Depends::Many(vec!["a".to_owned()])),
            Some(&Depends::Many(vec!["a".to_owned()])),
        ]
    );
    assert_eq!(validate(&normal), Vec::new());
}

/// A chain of `steps` steps, each capturing an output and reading the previous step's and
/// the first step's.
fn long_chain(steps: usize) -> Value {
    let steps: Vec<Value> = (0..steps)
        .map(|index| {
            let command = if index == 0 {
                "echo first".to_owned()
            } else {
                format!("echo ${{OUT_{}}} ${{OUT_0}}", index - 1)
            };
            json!({"name": format!("s{index}"), "command": command, "output": format!("OUT_{index}")})
        })
        .collect();
    json!({"name": "long", "steps": steps})
}

#[test]
fn a_chain_at_the_step_limit_is_checked_in_full() {
    let mut document = long_chain(super::validate::MAX_STEPS);
    assert!(errors_of(document.clone()).is_empty());
    // A step reading the output of a later one, deep in the chain, is still caught.
    document["steps"][700]["command"] = json!("echo ${OUT_900}");
    let errors = errors_of(document);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        error_at(&errors, "steps[700].command")
            .contains("is the output of step 's900', but step 's700' does not depend on it")
    );
}

#[test]
fn workflows_over_the_step_limit_get_one_clear_error() {
    let document = long_chain(50_000);
    let errors = errors_of(document.clone());
    assert_eq!(errors.len(), 1, "{:?}", &errors[..errors.len().min(3)]);
    assert_eq!(
        error_at(&errors, "steps"),
        "a workflow may have at most 1000 steps; this one has 50000"
    );
    // Through the agent's `validate_workflow` tool, and for an already parsed workflow.
    let report = crate::tools::ValidationReport::of_arguments(&json!({"workflow": document}));
    assert!(!report.valid);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].path, "steps");
    assert!(
        report.workflow.is_none(),
        "a workflow over the limit is not read"
    );
    let parsed = Workflow::from_value(long_chain(1001)).expect("parses");
    let errors = validate(&parsed);
    assert_eq!(errors.len(), 1);
    assert!(error_at(&errors, "steps").contains("at most 1000 steps"));
}
