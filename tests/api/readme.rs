//! The README's own Python and JavaScript examples, run as written against the server on the
//! offline provider (only the address changes), so the documentation cannot drift from what
//! the server does.

use std::path::Path;
use std::process::Command;

use crate::helpers::spawn_app;

/// The fenced code blocks of `language` in the README.
fn examples(language: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let fence = format!("```{language}\n");
    readme
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

async fn run(program: &'static str, script: &Path) -> String {
    let script = script.to_owned();
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(program)
            .arg(&script)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
            .output()
            .unwrap_or_else(|err| panic!("{program}: {err}; run `make deps`"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[actix_rt::test]
async fn the_readme_python_examples_work_against_the_offline_provider() {
    let app = spawn_app().await;
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let examples = examples("python");
    assert!(
        examples.len() >= 2,
        "the README has a chat and a compose example"
    );
    for example in examples {
        let script =
            std::env::temp_dir().join(format!("kubiya-readme-{}.py", uuid::Uuid::new_v4()));
        std::fs::write(
            &script,
            example.replace("http://localhost:8000", &app.address),
        )
        .unwrap();
        let output = run(python, &script).await;
        assert!(
            output.contains("not a language model")
                || output.contains("workflow system-health-check"),
            "{example}\nprinted:\n{output}"
        );
    }
}

#[actix_rt::test]
async fn the_readme_javascript_example_works_against_the_offline_provider() {
    let app = spawn_app().await;
    let examples = examples("js");
    assert!(!examples.is_empty());
    for example in examples {
        // Node resolves packages next to the script: write it among the pinned clients.
        let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
            .join(format!("readme-{}.mjs", uuid::Uuid::new_v4()));
        std::fs::write(
            &script,
            example.replace("http://localhost:8000", &app.address),
        )
        .unwrap();
        let output = run("node", &script).await;
        let _ = std::fs::remove_file(&script);
        assert!(
            output.contains("not a language model"),
            "{example}\nprinted:\n{output}"
        );
    }
}
