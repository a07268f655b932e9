//! Enumerated request fields (`mode`, `stream_format`, `format`): each is a small enum with
//! the table of names it is spelled by, matched without regard to case. A value outside the
//! table is a 400 naming the field and every allowed value, instead of a silent default. The
//! enum's `ToSchema` derive puts the same names in the API document (a test in
//! `routes::openapi` checks they agree).

use crate::error::ApiError;

/// An enumerated field: its values and the names that spell them.
pub trait Choice: Copy + 'static {
    const NAMES: &'static [(&'static str, Self)];
}

/// `value` as one of `T`'s names, or a 400 on `param` listing them.
pub fn parse<T: Choice>(value: &str, param: &str) -> Result<T, ApiError> {
    T::NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, choice)| *choice)
        .ok_or_else(|| {
            let allowed: Vec<String> = T::NAMES
                .iter()
                .map(|(name, _)| format!("\"{name}\""))
                .collect();
            ApiError::invalid_field(
                param,
                format!(
                    "Unknown {param} `{}`: use one of {}.",
                    value.escape_debug(),
                    allowed.join(", ")
                ),
            )
        })
}
