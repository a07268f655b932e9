//! Redis key parts: every key a replica writes is a prefix and parts joined by `:`, and a
//! part comes from a client (a tenant, a user, a session id), so it is escaped first.

/// Escapes `:` (the separator) and `%` so that distinct keys never share a Redis key.
pub fn key_part(part: &str) -> String {
    part.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_run_into_each_other() {
        assert_ne!(
            format!("{}:{}", key_part("a:b"), key_part("c")),
            format!("{}:{}", key_part("a"), key_part("b:c"))
        );
        assert_eq!(key_part("50%:x"), "50%25%3Ax");
    }
}
