//! Which MCP tools a caller may see and call: [`McpAccess`], set per API key in the auth
//! configuration (`mcp_allow`) and carried with each turn. The supervisor applies it when it
//! builds the catalog for the model ([`super::ListTools`]) and again when a tool is called
//! ([`super::CallTool`]), so a model that names a tool it was never shown still cannot run it.

/// All tools, or only those the entries name: a server name allows all of that server's
/// tools, `server__tool` one tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum McpAccess {
    #[default]
    All,
    Only(Vec<String>),
}

impl McpAccess {
    /// Whether the namespaced tool `server__tool` may be listed and called.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(entries) => entries.iter().any(|entry| {
                entry == tool
                    || tool
                        .strip_prefix(entry.as_str())
                        .is_some_and(|rest| rest.starts_with("__"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_allow_their_tools_and_tools_only_themselves() {
        let access = McpAccess::Only(vec!["time".into(), "everything__get-sum".into()]);
        assert!(access.allows("time__get_current_time"));
        assert!(access.allows("everything__get-sum"));
        assert!(!access.allows("everything__echo"));
        assert!(
            !access.allows("timekeeper__now"),
            "a prefix is not a server"
        );
        assert!(!McpAccess::Only(Vec::new()).allows("time__get_current_time"));
        assert!(McpAccess::All.allows("anything__at_all"));
    }
}
