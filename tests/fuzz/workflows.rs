//! Workflow documents, JSON and YAML, through parsing and validation.

use kubiya_actors::workflow::Workflow;
use kubiya_actors::workflow::dsl::model::parse_document;
use kubiya_actors::workflow::validate_value;
use proptest::prelude::*;

use crate::allocation::{assert_bounded, measure};
use crate::inputs::{config, fixtures, json, mutated};

/// A YAML document becomes a tree of values, then every problem with its path and message:
/// up to about 410 bytes held per input byte, measured on the worst inputs the fuzzer found
/// (documents of thousands of tiny invalid steps, each with several problems). Linear, so a
/// bound; over HTTP a workflow also has at most 1,000 steps.
const WORKFLOW_FACTOR: usize = 512;

fn check(text: &str) {
    let ((), peak) = measure(|| {
        if let Ok(document) = parse_document(text) {
            let _ = validate_value(&document);
            let _ = Workflow::from_value(document);
        }
    });
    assert_bounded("workflow document", text.len(), peak, WORKFLOW_FACTOR);
}

/// The fixtures, plus each as JSON when it is YAML, so both parsers get every shape.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = fixtures("workflows");
    for seed in seeds.clone() {
        let text = String::from_utf8_lossy(&seed);
        if let Ok(value) = parse_document(&text) {
            seeds.push(value.to_string().into_bytes());
        }
    }
    seeds
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn workflow_documents_mutated(input in mutated(seeds())) {
        check(&String::from_utf8_lossy(&input));
    }

    #[test]
    fn workflow_shaped_json(steps in prop::collection::vec(json(), 0..6), name in json()) {
        let document = serde_json::json!({"name": name, "steps": steps});
        check(&document.to_string());
    }
}
