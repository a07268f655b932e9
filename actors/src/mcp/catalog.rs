//! Turning what servers say into what the model sees: tool listings into namespaced
//! [`ToolSpec`]s (`server__tool`, with names every provider accepts and schemas without the
//! `$schema` dialect marker), and `CallToolResult`s into one capped text, a
//! [`ToolOutput`]. The supervisor's children build a [`ServerCatalog`] after each listing and
//! count every change in [`CatalogChanges`], so readers keep their copy until it moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::provider::ToolSpec;

/// Separates the server name from the tool name in a namespaced tool name.
pub const NAMESPACE_SEPARATOR: &str = "__";
/// Providers limit function names (OpenAI: 64 characters of `[A-Za-z0-9_-]`).
const MAX_TOOL_NAME: usize = 64;

/// A tool result for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Text for the model: the result's content blocks, rendered and capped.
    pub content: String,
    /// The tool ran and failed; the model should see why and may correct itself.
    pub is_error: bool,
    /// `content` was cut to the configured size.
    pub truncated: bool,
}

/// Counts changes to the servers' states and catalogs: a copy of the [`ListTools`] answer
/// taken at one count is current for as long as the count has not moved.
///
/// [`ListTools`]: super::ListTools
#[derive(Debug, Clone, Default)]
pub struct CatalogChanges(Arc<AtomicU64>);

impl CatalogChanges {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// One server's tools: the specs the model sees, and how each exposed name maps back.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerCatalog {
    pub specs: Vec<ToolSpec>,
    /// Exposed (namespaced) name → the server's own tool name.
    pub names: BTreeMap<String, String>,
}

impl ServerCatalog {
    /// Builds the catalog from a `tools/list` listing. Tools that only run as tasks are left out:
    /// a plain call to them always fails.
    pub(crate) fn from_listing(server: &str, tools: &[Value]) -> Self {
        let mut catalog = Self::default();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            if tool
                .pointer("/execution/taskSupport")
                .and_then(Value::as_str)
                == Some("required")
            {
                tracing::debug!(
                    server,
                    tool = name,
                    "left out a tool that runs only as a task"
                );
                continue;
            }
            let exposed = namespaced_name(server, name);
            if catalog.names.contains_key(&exposed) {
                tracing::warn!(
                    server,
                    tool = name,
                    "left out a tool whose name collides with another"
                );
                continue;
            }
            let description = tool
                .get("description")
                .and_then(Value::as_str)
                .or_else(|| tool.get("title").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            catalog.specs.push(ToolSpec {
                name: exposed.clone(),
                description,
                parameters: clean_schema(tool.get("inputSchema")),
            });
            catalog.names.insert(exposed, name.to_owned());
        }
        catalog
    }
}

/// `server__tool`, with characters providers reject replaced by `_`, shortened with a hash
/// suffix when too long so that distinct tools keep distinct names.
pub fn namespaced_name(server: &str, tool: &str) -> String {
    let raw = format!("{server}{NAMESPACE_SEPARATOR}{tool}");
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_TOOL_NAME {
        return clean;
    }
    let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{:08x}", &clean[..MAX_TOOL_NAME - 9], hash as u32)
}

/// The server name of a namespaced tool name.
pub fn server_of(tool: &str) -> Option<&str> {
    tool.split_once(NAMESPACE_SEPARATOR)
        .map(|(server, _)| server)
}

/// An object schema without `$schema` (TypeScript servers mark draft-07, which some providers
/// reject); a missing or non-object schema becomes the empty object schema.
fn clean_schema(schema: Option<&Value>) -> Value {
    match schema {
        Some(Value::Object(object)) => {
            let mut object: Map<String, Value> = object.clone();
            object.remove("$schema");
            object
                .entry("type")
                .or_insert_with(|| Value::from("object"));
            Value::Object(object)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// Renders a `CallToolResult` as text for the model, capped at `max_bytes`.
pub(crate) fn render_result(result: &Value, max_bytes: usize) -> ToolOutput {
    let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    let blocks: Vec<String> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().map(render_block).collect())
        .unwrap_or_default();
    let mut text = blocks.join("\n");
    if text.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        text = structured.to_string();
    }
    let (content, truncated) = truncate(&text, max_bytes);
    ToolOutput {
        content,
        is_error,
        truncated,
    }
}

/// One content block as text; blocks we do not know become their JSON, never an error.
fn render_block(block: &Value) -> String {
    let field = |name: &str| block.get(name).and_then(Value::as_str).unwrap_or_default();
    match field("type") {
        "text" => field("text").to_owned(),
        kind @ ("image" | "audio") => format!(
            "[{kind} {}: {} bytes, base64, not shown]",
            field("mimeType"),
            field("data").len()
        ),
        "resource_link" => format!("[resource link {}: {}]", field("name"), field("uri")),
        "resource" => {
            let resource = block.get("resource").unwrap_or(&Value::Null);
            match resource.get("text").and_then(Value::as_str) {
                Some(text) => text.to_owned(),
                None => format!(
                    "[resource {}: binary, not shown]",
                    resource
                        .get("uri")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            }
        }
        _ => block.to_string(),
    }
}

/// Keeps the head and the tail of `text` within `max_bytes`, with a note in between saying how
/// much was cut. Cuts fall on character boundaries.
pub(crate) fn truncate(text: &str, max_bytes: usize) -> (String, bool) {
    if text.len() <= max_bytes {
        return (text.to_owned(), false);
    }
    let note_room = 80.min(max_bytes);
    let budget = max_bytes - note_room;
    let head_end = floor_boundary(text, budget * 3 / 4);
    let tail_start = ceil_boundary(text, text.len() - (budget - head_end).min(text.len()));
    let cut = tail_start - head_end;
    let note = format!("\n[... {cut} of {} bytes cut ...]\n", text.len());
    let mut out = String::with_capacity(max_bytes);
    out.push_str(&text[..head_end]);
    if out.len() + note.len() + (text.len() - tail_start) <= max_bytes {
        out.push_str(&note);
    }
    out.push_str(&text[tail_start..]);
    (out, true)
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_safe_for_providers() {
        assert_eq!(
            namespaced_name("everything", "get-sum"),
            "everything__get-sum"
        );
        assert_eq!(namespaced_name("fs", "read.file"), "fs__read_file");
        let long = namespaced_name("server", &"x".repeat(100));
        let other = namespaced_name("server", &format!("{}y", "x".repeat(99)));
        assert_eq!(long.len(), 64);
        assert_ne!(long, other);
        assert_eq!(server_of("everything__get-sum"), Some("everything"));
    }

    #[test]
    fn listings_become_specs_without_task_only_tools_or_dialect_markers() {
        let tools = vec![
            json!({"name":"get-sum","description":"adds","inputSchema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"a":{"type":"number"}}}}),
            json!({"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}),
            json!({"name":"bare","title":"Bare tool"}),
        ];
        let catalog = ServerCatalog::from_listing("ev", &tools);
        let names: Vec<&str> = catalog
            .specs
            .iter()
            .map(|spec| spec.name.as_str())
            .collect();
        assert_eq!(names, ["ev__get-sum", "ev__bare"]);
        assert!(catalog.specs[0].parameters.get("$schema").is_none());
        assert_eq!(catalog.specs[1].description, "Bare tool");
        assert_eq!(catalog.specs[1].parameters["type"], "object");
        assert_eq!(catalog.names["ev__get-sum"], "get-sum");
    }

    #[test]
    fn results_render_every_block_kind_and_flag_errors() {
        let result = json!({"content":[
            {"type":"text","text":"hello"},
            {"type":"image","data":"AAAA","mimeType":"image/png"},
            {"type":"resource","resource":{"uri":"file:///a","text":"inside"}},
            {"type":"json","value":1}
        ],"isError":true});
        let output = render_result(&result, 1000);
        assert!(output.is_error && !output.truncated);
        assert_eq!(
            output.content,
            "hello\n[image image/png: 4 bytes, base64, not shown]\ninside\n{\"type\":\"json\",\"value\":1}"
        );
        let structured = render_result(&json!({"structuredContent":{"a":1}}), 1000);
        assert_eq!(structured.content, "{\"a\":1}");
    }

    #[test]
    fn long_text_keeps_head_and_tail_within_the_cap() {
        let text = format!("{}{}", "é".repeat(3000), "END");
        let (cut, truncated) = truncate(&text, 1000);
        assert!(truncated);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.starts_with('é') && cut.ends_with("END"));
        assert!(cut.contains("bytes cut"));
        assert_eq!(truncate("short", 1000), ("short".to_owned(), false));
    }
}
