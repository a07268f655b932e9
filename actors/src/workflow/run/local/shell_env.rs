//! Values reach shell commands as environment variables, never as text pasted into the
//! command: a param holding `$(...)`, backticks, `;` or a newline stays data.
//!
//! The step runner exports every variable in scope; [`prepare`] rewrites the `${NAME}`
//! references of a shell text so that the shell itself expands them from that environment:
//! outside quotes and inside double quotes `${NAME}` is already an expansion and stays; inside
//! single quotes, where a shell expands nothing, it becomes `'"${NAME}"'` (close the quotes,
//! expand inside double quotes, reopen), so that `echo 'Hello ${NAME}'` keeps printing the
//! value. A reference into JSON (`${NAME.items.0.id}`) is resolved here and exported under a
//! name of its own. References that are not in scope stay as written, for the shell.
//!
//! The quoting is followed as a POSIX shell reads it at the top level (single and double
//! quotes, `$'...'` and backslashes); quotes nested inside a command substitution within
//! double quotes are not followed.

use crate::workflow::dsl::template::{Scope, references};

/// Prefix of the variables holding resolved JSON-path references.
const REF_PREFIX: &str = "KUBIYA_REF_";

/// Quoting at a point of a shell text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    /// `$'...'`, where a backslash escapes a quote.
    AnsiC,
    Double,
}

/// `text` rewritten for a shell, and the extra variables it needs.
pub(crate) fn prepare(text: &str, scope: &Scope) -> (String, Vec<(String, String)>) {
    let quotes = quoting(text);
    let mut result = String::with_capacity(text.len());
    let mut extra = Vec::new();
    let mut copied_up_to = 0;
    for reference in references(text) {
        let Some(value) = scope.resolve(&reference) else {
            continue;
        };
        let name = match reference.path {
            None => reference.name.to_owned(),
            Some(_) => {
                let name = format!("{REF_PREFIX}{}", extra.len());
                extra.push((name.clone(), value));
                name
            }
        };
        result.push_str(&text[copied_up_to..reference.span.start]);
        match quotes[reference.span.start] {
            Quote::None | Quote::Double => result.push_str(&format!("${{{name}}}")),
            Quote::Single => result.push_str(&format!("'\"${{{name}}}\"'")),
            Quote::AnsiC => result.push_str(&format!("'\"${{{name}}}\"$'")),
        }
        copied_up_to = reference.span.end;
    }
    result.push_str(&text[copied_up_to..]);
    (result, extra)
}

/// The quoting in force at each byte of `text`.
fn quoting(text: &str) -> Vec<Quote> {
    let bytes = text.as_bytes();
    let mut states = Vec::with_capacity(bytes.len() + 1);
    let mut state = Quote::None;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        states.push(state);
        let mut skip_next = false;
        state = match (state, byte) {
            (Quote::None, b'\\') | (Quote::Double, b'\\') | (Quote::AnsiC, b'\\') => {
                skip_next = true;
                state
            }
            (Quote::None, b'\'') => Quote::Single,
            (Quote::None, b'$') if bytes.get(index + 1) == Some(&b'\'') => {
                states.push(state);
                index += 1;
                Quote::AnsiC
            }
            (Quote::None, b'"') => Quote::Double,
            (Quote::Single, b'\'') | (Quote::AnsiC, b'\'') | (Quote::Double, b'"') => Quote::None,
            (state, _) => state,
        };
        index += 1;
        if skip_next && index < bytes.len() {
            states.push(state);
            index += 1;
        }
    }
    states.push(state);
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let mut scope = Scope::new();
        scope.set("NAME", "x; cat /etc/hostname; echo $(id -u)");
        scope.set("JSON", r#"{"items":[{"id":7}]}"#);
        scope
    }

    #[test]
    fn references_become_expansions_whatever_the_quoting() {
        let (text, extra) = prepare(
            r#"echo ${NAME} "${NAME}" 'a ${NAME} b' $'c ${NAME}' \'${NAME} ${JSON.items.0.id} ${OTHER}"#,
            &scope(),
        );
        assert_eq!(
            text,
            r#"echo ${NAME} "${NAME}" 'a '"${NAME}"' b' $'c '"${NAME}"$'' \'${NAME} ${KUBIYA_REF_0} ${OTHER}"#
        );
        assert_eq!(extra, [("KUBIYA_REF_0".to_owned(), "7".to_owned())]);
    }

    #[test]
    fn double_quotes_inside_single_quotes_are_literal() {
        let (text, _) = prepare(r#"echo '"' ${NAME} '"'"#, &scope());
        assert_eq!(text, r#"echo '"' ${NAME} '"'"#);
    }
}
