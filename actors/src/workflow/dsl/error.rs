//! [`ValidationError`]: one problem with a workflow, where it is and what to do about it.
//! Validation produces them, the local runner refuses a workflow that has any, and the HTTP
//! layer and the model see them as they are.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem with a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidationError {
    /// Where, as a JSON path from the document root (`""` for the document itself).
    pub path: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
