//! Approval before a run (plan → approve → act): when a turn asks for it, the agent's
//! `execute_workflow` call is not run but held as a [`PendingApproval`] in the session, and
//! the turn ends asking the user. The next turn answers it: the chat UI protocol sends an
//! explicit [`ApprovalAnswer`]; the text protocols send a message, which approves only when
//! it plainly says yes. Approved, the held call runs first thing in that turn; otherwise it
//! is declined, the model is told so, and anything else the user said is the new request.

use serde::{Deserialize, Serialize};

use crate::provider::ToolCall;

/// An `execute_workflow` call waiting for the user, kept with the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub approval_id: String,
    pub call: ToolCall,
}

/// The user's explicit answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    pub approval_id: String,
    pub approved: bool,
    pub reason: Option<String>,
}

/// Whether a plain message approves the pending run: a short yes, nothing more. Anything
/// longer or different is a new instruction, and declines the run.
pub fn is_affirmative(message: &str) -> bool {
    const YES: [&str; 14] = [
        "yes",
        "y",
        "yes please",
        "yep",
        "ok",
        "okay",
        "approve",
        "approved",
        "go ahead",
        "run it",
        "do it",
        "proceed",
        "confirm",
        "sure",
    ];
    YES.contains(&normalize(message).as_str())
}

/// Whether a plain message only declines: then it is the answer, not a new request.
pub fn is_negative(message: &str) -> bool {
    const NO: [&str; 9] = [
        "no",
        "n",
        "nope",
        "no thanks",
        "cancel",
        "stop",
        "don't",
        "not now",
        "no, not now",
    ];
    NO.contains(&normalize(message).as_str())
}

fn normalize(message: &str) -> String {
    message
        .trim()
        .trim_end_matches(['.', '!'])
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::is_affirmative;

    #[test]
    fn only_a_plain_yes_approves() {
        for yes in ["yes", "Yes!", "  go ahead. ", "OK", "run it"] {
            assert!(is_affirmative(yes), "{yes}");
        }
        for no in ["no", "yes but first delete /", "don't", "", "yesterday"] {
            assert!(!is_affirmative(no), "{no}");
        }
        assert!(super::is_negative("No, not now."));
        assert!(!super::is_negative("no, back up /etc instead"));
    }
}
