//! `${VAR}` templates: finding references in step text (for validation) and substituting
//! values into it (for the local runner: the `http` executor's config and URL, precondition
//! values; shell text gets its values as environment variables instead, see `shell_env`).
//!
//! Only the DSL's own form is a reference: `${NAME}` or `${NAME.path.to.field}` (a field of an
//! output that holds JSON). Shell parameter expansions such as `${NAME:-x}`, `${#NAME}` or
//! `${NAME%.txt}` and bare `$NAME` belong to the shell: they are neither checked nor
//! substituted, and the shell expands them from the exported environment. A reference whose
//! name is not in scope is left as written for the same reason.

use indexmap::IndexMap;
use serde_json::Value;
use std::collections::HashSet;
use std::ops::Range;

/// Everything but RFC 3986's unreserved characters is encoded in a URL component.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Variables every POSIX shell or login environment provides; referencing them is never an
/// error.
pub const WELL_KNOWN_VARS: &[&str] = &[
    "HOME", "PATH", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TMPDIR", "HOSTNAME", "LANG",
    "LC_ALL", "TERM", "IFS", "RANDOM", "SECONDS", "LINENO", "UID", "EUID", "PPID",
];

/// One `${NAME}` or `${NAME.path}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    pub name: &'a str,
    /// The dotted path after the name, without the leading dot.
    pub path: Option<&'a str>,
    /// Byte range of the whole `${...}` in the text.
    pub span: Range<usize>,
}

fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether `name` can be an environment variable name.
pub fn is_var_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|first| is_name_start(*first))
        && bytes.iter().all(|b| is_name_byte(*b))
}

/// Every DSL reference in `text`, in order.
pub fn references(text: &str) -> Vec<Reference<'_>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("${") {
        let start = at + offset;
        let name_start = start + 2;
        at = name_start;
        if !bytes.get(name_start).copied().is_some_and(is_name_start) {
            continue;
        }
        let mut name_end = name_start;
        while bytes.get(name_end).copied().is_some_and(is_name_byte) {
            name_end += 1;
        }
        let Some(close) = text[name_end..].find('}').map(|close| name_end + close) else {
            break;
        };
        let path = match bytes[name_end] {
            b'}' => None,
            b'.' if is_json_path(&text[name_end + 1..close]) => Some(&text[name_end + 1..close]),
            // A shell expansion like `${NAME:-default}`: not ours.
            _ => continue,
        };
        found.push(Reference {
            name: &text[name_start..name_end],
            path,
            span: start..close + 1,
        });
        at = close + 1;
    }
    found
}

fn is_json_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|segment| {
            !segment.is_empty() && segment.bytes().all(|b| is_name_byte(b) || b == b'-')
        })
}

/// Names a shell text defines for itself (`NAME=…`, `export NAME=…`, `for NAME in`,
/// `read NAME`), so that `${NAME}` later in the same text is not reported as undefined.
pub fn shell_assigned_names(text: &str) -> HashSet<&str> {
    let mut names = HashSet::new();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'))
        .filter(|word| !word.is_empty())
        .collect();
    for (index, word) in words.iter().enumerate() {
        if let Some((name, _)) = word.split_once('=')
            && is_var_name(name)
        {
            names.insert(name);
        }
        let next = words.get(index + 1).copied();
        match *word {
            "for" | "select" => {
                if let Some(name) = next.filter(|name| is_var_name(name)) {
                    names.insert(name);
                }
            }
            "read" => {
                names.extend(
                    words[index + 1..]
                        .iter()
                        .copied()
                        .skip_while(|word| word.starts_with('-'))
                        .take_while(|word| is_var_name(word)),
                );
            }
            _ => {}
        }
    }
    names
}

/// Values that `${NAME}` references resolve to, later insertions shadowing earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    vars: IndexMap<String, String>,
}

impl Scope {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        // Re-insert so the latest definition also comes last when exported.
        self.vars.shift_remove(&name);
        self.vars.insert(name, value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every variable, in definition order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The value of a reference, or `None` when it is not in scope (or its path does not
    /// exist in the JSON value).
    pub fn resolve(&self, reference: &Reference<'_>) -> Option<String> {
        let value = self.get(reference.name)?;
        let Some(path) = reference.path else {
            return Some(value.to_owned());
        };
        let mut json: Value = serde_json::from_str(value).ok()?;
        for segment in path.split('.') {
            json = match json {
                Value::Object(mut object) => object.remove(segment)?,
                Value::Array(mut items) => {
                    let index: usize = segment.parse().ok()?;
                    (index < items.len()).then(|| items.swap_remove(index))?
                }
                _ => return None,
            };
        }
        Some(match json {
            Value::String(text) => text,
            other => other.to_string(),
        })
    }

    /// `text` with every resolvable reference replaced by its value.
    pub fn substitute(&self, text: &str) -> String {
        let mut result = String::with_capacity(text.len());
        let mut copied_up_to = 0;
        for reference in references(text) {
            if let Some(value) = self.resolve(&reference) {
                result.push_str(&text[copied_up_to..reference.span.start]);
                result.push_str(&value);
                copied_up_to = reference.span.end;
            }
        }
        result.push_str(&text[copied_up_to..]);
        result
    }

    /// A URL with references substituted: those forming the start of the URL (scheme and
    /// authority, or a base URL like `${BASE}/path`) as they are, every later one (path,
    /// query, fragment) percent-encoded so that a value stays one component.
    pub fn substitute_url(&self, text: &str) -> String {
        let found = references(text);
        let outside_references = |at: usize| !found.iter().any(|r| r.span.contains(&at));
        let authority_start = text.find("://").map_or(0, |at| at + 3);
        let base_end = text[authority_start..]
            .char_indices()
            .map(|(offset, c)| (authority_start + offset, c))
            .find(|&(at, c)| matches!(c, '/' | '?' | '#') && outside_references(at))
            .map_or(text.len(), |(at, _)| at);
        let mut result = String::with_capacity(text.len());
        let mut copied_up_to = 0;
        for reference in &found {
            let Some(value) = self.resolve(reference) else {
                continue;
            };
            result.push_str(&text[copied_up_to..reference.span.start]);
            if reference.span.start < base_end {
                result.push_str(&value);
            } else {
                result.extend(percent_encoding::utf8_percent_encode(&value, COMPONENT));
            }
            copied_up_to = reference.span.end;
        }
        result.push_str(&text[copied_up_to..]);
        result
    }

    /// `value` with every string inside it substituted.
    pub fn substitute_json(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.substitute(text)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.substitute_json(item))
                    .collect(),
            ),
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(key, item)| (key.clone(), self.substitute_json(item)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Every string inside a JSON value with its path suffix (e.g. `.args.url`), for checking
/// references in executor configs.
pub fn json_strings<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) => found.push((path, text)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                json_strings(item, format!("{path}[{index}]"), found);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                json_strings(item, format!("{path}.{key}"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_dsl_references() {
        let text = "echo ${A} ${B.c.0} ${C:-x} ${#D} $E ${ F} ${G";
        let names: Vec<_> = references(text).iter().map(|r| (r.name, r.path)).collect();
        assert_eq!(names, [("A", None), ("B", Some("c.0"))]);
    }

    #[test]
    fn substitutes_known_names_and_leaves_the_rest() {
        let mut scope = Scope::new();
        scope.set("NAME", "world");
        scope.set("JSON", r#"{"items":[{"id":7}],"s":"x"}"#);
        assert_eq!(
            scope
                .substitute("echo 'Hello ${NAME}' ${HOME} ${JSON.items.0.id} ${JSON.s} ${NAME:-y}"),
            "echo 'Hello world' ${HOME} 7 x ${NAME:-y}"
        );
    }

    #[test]
    fn values_in_a_url_path_or_query_are_encoded_but_a_base_is_not() {
        let mut scope = Scope::new();
        scope.set("BASE", "http://api.test:8080");
        scope.set("HOST", "api.test");
        scope.set("Q", "a b&admin=1/../x");
        assert_eq!(
            scope.substitute_url("${BASE}/search?q=${Q}"),
            "http://api.test:8080/search?q=a%20b%26admin%3D1%2F..%2Fx"
        );
        assert_eq!(
            scope.substitute_url("https://${HOST}/items/${Q}"),
            "https://api.test/items/a%20b%26admin%3D1%2F..%2Fx"
        );
    }

    #[test]
    fn later_definitions_shadow_earlier_ones() {
        let mut scope = Scope::new();
        scope.set("A", "1");
        scope.set("B", "2");
        scope.set("A", "3");
        assert_eq!(scope.iter().collect::<Vec<_>>(), [("B", "2"), ("A", "3")]);
    }

    #[test]
    fn shell_assignments_are_recognised() {
        let names = shell_assigned_names("X=1; export Y=2\nfor f in *; do read -r LINE REST; done");
        for name in ["X", "Y", "f", "LINE", "REST"] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(!names.contains("do"));
    }
}
