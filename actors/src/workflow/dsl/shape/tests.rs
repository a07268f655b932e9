//! Tests of the shape check: wrong values of every kind reported together, and, for every
//! field the model's schema has (so for a field added tomorrow too), that a value the model
//! cannot read is reported at its path and what remains always reads.

use serde_json::{Value, json};

use super::check_shape;
use super::tree::{Node, ShapeId, Tree, WORKFLOW};
use crate::workflow::dsl::model::Workflow;

/// The problems in `document`, after checking that the cleaned document reads into the model.
fn problems(document: &Value) -> Vec<(String, String)> {
    let mut cleaned = document.as_object().expect("an object").clone();
    let errors = check_shape(&mut cleaned);
    if let Err(error) = Workflow::from_value(Value::Object(cleaned.clone())) {
        panic!("{document} was cleaned into {cleaned:?}, which does not read: {error}");
    }
    errors
        .into_iter()
        .map(|error| (error.path, error.message))
        .collect()
}

#[test]
fn wrong_values_of_every_kind_are_reported_in_one_answer() {
    let document = json!({
        "name": ["w"],
        "description": false,
        "maxActiveSteps": 0,
        "timeoutSec": "1m",
        "params": {"P": {"required": "yes", "secret": 1, "default": {"any": "thing"}},
                   "OBJECT_DEFAULT": {"a": 1}},
        "files": {"a.txt": 5},
        "handlerOn": {"failure": {"command": 1}, "exit": "echo"},
        "steps": [{
            "name": "s",
            "command": "true",
            "retries": -1,
            "depends": ["a", 2],
            "preconditions": ["test -f x", {"condition": "${A}", "expected": [1]}, {"expected": "1"}, 3],
            "retryPolicy": {"exponentialBase": "two", "backoff": "yes", "exitCodes": [1, "2"]},
            "repeatPolicy": {"repeat": "always", "exitCode": 1.5, "limit": 5000000000_u64},
            "continueOn": {"exitCode": "1", "markSuccess": null},
            "executor": {"type": 7, "config": []},
            "env": [{"A": "1"}, "B=2"],
            "signalOnStop": 15,
            "parallel": {"items": [1, 2]}
        }]
    });
    let found = problems(&document);
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "steps[0].executor.type",
            "steps[0].executor.config",
            "steps[0].depends[1]",
            "steps[0].env[1]",
            "steps[0].retryPolicy.exponentialBase",
            "steps[0].retryPolicy.backoff",
            "steps[0].retryPolicy.exitCodes[1]",
            "steps[0].repeatPolicy.limit",
            "steps[0].repeatPolicy.repeat",
            "steps[0].repeatPolicy.exitCode",
            "steps[0].continueOn.exitCode",
            "steps[0].preconditions[1].expected",
            "steps[0].preconditions[2].condition",
            "steps[0].preconditions[3]",
            "steps[0].retries",
            "steps[0].signalOnStop",
            "description",
            "params.P.required",
            "params.P.secret",
            "timeoutSec",
            "handlerOn.failure.command",
            "handlerOn.exit",
            "maxActiveSteps",
            "files.a.txt",
        ],
        "{found:#?}"
    );
    for (path, message) in [
        ("name", "\"name\" must be a string, not a list"),
        (
            "maxActiveSteps",
            "\"maxActiveSteps\" must be a whole number (1 or more), not 0",
        ),
        (
            "steps[0].retries",
            "\"retries\" must be a whole number (0 or more), not -1",
        ),
        (
            "steps[0].repeatPolicy.limit",
            "\"limit\" must be a whole number (0 or more), not 5000000000",
        ),
        (
            "steps[0].retryPolicy.backoff",
            "\"backoff\" must be true, false or a number, not \"yes\"",
        ),
        (
            "steps[0].repeatPolicy.exitCode",
            "\"exitCode\" must be an exit code or a list of exit codes, not 1.5",
        ),
        (
            "steps[0].preconditions[1].expected",
            "\"expected\" must be a string, number or boolean, not a list",
        ),
        (
            "steps[0].preconditions[2].condition",
            "\"condition\" is missing; it must be a string",
        ),
        (
            "steps[0].preconditions[3]",
            "each item of \"preconditions\" must be a command string or a {\"condition\", \"expected\"} object, not 3",
        ),
        (
            "steps[0].env[1]",
            "each item of \"env\" must be an object, not \"B=2\"",
        ),
        ("files.a.txt", "\"a.txt\" must be a string, not 5"),
        ("handlerOn.exit", "\"exit\" must be an object, not \"echo\""),
    ] {
        let said = found
            .iter()
            .find(|(at, _)| at == path)
            .map(|(_, said)| said.as_str());
        assert_eq!(said, Some(message), "at {path}");
    }
}

#[test]
fn values_the_model_reads_pass_untouched() {
    for example in [
        crate::workflow::dsl::model::tests::example_a(),
        crate::workflow::dsl::model::tests::example_b(),
        crate::workflow::dsl::model::tests::example_c(),
        crate::workflow::dsl::model::tests::example_d(),
    ] {
        let mut cleaned = example.as_object().expect("an object").clone();
        assert_eq!(check_shape(&mut cleaned), Vec::new(), "{example}");
        assert_eq!(Value::Object(cleaned), example);
    }
}

/// One step of a path to a field: a key of an object of that shape, or the first list item.
#[derive(Clone, Debug)]
enum Step {
    Key(String, ShapeId),
    First,
}

/// Every field path the schema has, with the field's shape: object fields, a sample key of
/// maps (`params.K`), the first item of lists, inside untagged enums' object and list variants.
fn field_paths(tree: &Tree) -> Vec<(Vec<Step>, ShapeId)> {
    fn walk(
        tree: &Tree,
        id: ShapeId,
        at: &[Step],
        seen: &mut Vec<ShapeId>,
        out: &mut Vec<(Vec<Step>, ShapeId)>,
    ) {
        let base = tree.base_id(id);
        // A type inside itself (none today) is walked once.
        if seen.contains(&base) || at.len() > 8 {
            return;
        }
        seen.push(base);
        let mut visit = |step: Step, child: ShapeId, seen: &mut Vec<ShapeId>| {
            let mut path = at.to_vec();
            path.push(step);
            out.push((path.clone(), child));
            walk(tree, child, &path, seen, out);
        };
        match tree.base(id) {
            Node::Object { fields, rest, .. } => {
                for field in fields {
                    visit(Step::Key(field.key.clone(), base), field.shape, seen);
                }
                if let Some(rest) = rest {
                    visit(Step::Key("K".to_owned(), base), *rest, seen);
                }
            }
            Node::List(item) => visit(Step::First, *item, seen),
            Node::OneOf(variants) => {
                for variant in variants {
                    walk(tree, *variant, at, seen, out);
                }
            }
            _ => {}
        }
        seen.pop();
    }
    let mut out = Vec::new();
    walk(tree, Tree::ROOT, &[], &mut Vec::new(), &mut out);
    out
}

/// A document that holds `value` at `path`, with the emptiest objects (their required fields
/// set) and one-item lists on the way.
fn document_with(path: &[Step], value: Value) -> Value {
    match path.split_first() {
        None => value,
        Some((Step::Key(key, object), rest)) => {
            let mut empty = WORKFLOW.zero(*object);
            if let Some(fields) = empty.as_object_mut() {
                fields.insert(key.clone(), document_with(rest, value));
            }
            empty
        }
        Some((Step::First, rest)) => Value::Array(vec![document_with(rest, value)]),
    }
}

fn json_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key, _) if out.is_empty() => out.push_str(key),
            Step::Key(key, _) => {
                out.push('.');
                out.push_str(key);
            }
            Step::First => out.push_str("[0]"),
        }
    }
    out
}

#[test]
fn every_field_of_the_model_is_checked_and_what_remains_reads() {
    let fields = field_paths(&WORKFLOW);
    // The schema is the model's: its fields are there, nested ones included.
    let paths: Vec<String> = fields.iter().map(|(path, _)| json_path(path)).collect();
    for expected in [
        "name",
        "steps[0].signalOnStop",
        "steps[0].retryPolicy.exitCodes[0]",
        "steps[0].preconditions[0].expected",
        "handlerOn.cancel.executor.type",
        "params.K.secret",
        "env.K",
        "files.K",
        "timeoutSec",
    ] {
        assert!(
            paths.iter().any(|path| path == expected),
            "{expected} in {paths:#?}"
        );
    }
    let candidates = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(70_000_000_000_u64),
        json!("x"),
        json!([]),
        json!([1]),
        json!({}),
        json!({"x": 1}),
    ];
    let mut rejected = 0;
    for (path, _) in &fields {
        let at = json_path(path);
        for candidate in &candidates {
            let document = document_with(path, candidate.clone());
            // Whatever is reported, the rest reads into the model (checked in `problems`).
            let found = problems(&document);
            if Workflow::from_value(document.clone()).is_err() {
                rejected += 1;
                assert!(
                    found.iter().any(|(reported, _)| *reported == at
                        || inside(reported, &at)
                        || inside(&at, reported)),
                    "{document} does not read into the model, but nothing was reported at {at}: {found:?}"
                );
            }
        }
    }
    assert!(
        rejected > 100,
        "only {rejected} unreadable documents were tried"
    );
}

fn inside(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[test]
fn every_field_of_the_schema_is_a_field_of_the_model() {
    // A document with every field at its emptiest reads with nothing left over as unknown.
    let fields = field_paths(&WORKFLOW);
    for (path, id) in &fields {
        let Some(Step::Key(key, _)) = path.last() else {
            continue;
        };
        if key == "K" {
            continue;
        }
        let document = document_with(path, WORKFLOW.zero(*id));
        let workflow = Workflow::from_value(document.clone())
            .unwrap_or_else(|error| panic!("{document}: {error}"));
        let leftover = workflow.extra.keys().next().or_else(|| {
            workflow
                .steps
                .first()
                .and_then(|step| step.extra.keys().next())
        });
        assert_eq!(
            leftover, None,
            "{document} has a field the model does not know"
        );
    }
}
