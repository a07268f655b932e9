//! The type checks of a raw workflow document, before it is read into the model: each value
//! of the wrong type is reported with its JSON path and replaced by the emptiest value of its
//! type, so that the rest still reads into the model and `validate` can check what it means.
//! Without this, one serde error would hide every other problem.
//!
//! What each field must be is not written here: it is the schema the model derives
//! ([`tree`]), so a field added to the model is checked as soon as it exists.

#[cfg(test)]
mod tests;
mod tree;

use std::borrow::Cow;

use serde_json::{Map, Value};

use self::tree::{Node, ShapeId, Tree, WORKFLOW};
use super::error::ValidationError;

/// Type-checks a workflow object in place, replacing bad values; returns the problems found.
pub(crate) fn check_shape(root: &mut Map<String, Value>) -> Vec<ValidationError> {
    let mut check = ShapeCheck {
        tree: &WORKFLOW,
        errors: Vec::new(),
    };
    check.object(root, Tree::ROOT, &Place::Root);
    check.errors
}

/// "a string", "a list" and so on, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Where a value is; its path is only written out for a problem.
enum Place<'a> {
    Root,
    Field(&'a Place<'a>, &'a str),
    Item(&'a Place<'a>, usize),
}

impl Place<'_> {
    fn path(&self) -> String {
        let mut path = String::new();
        self.write_path(&mut path);
        path
    }

    fn write_path(&self, path: &mut String) {
        match self {
            Self::Root => {}
            Self::Field(parent, key) => {
                parent.write_path(path);
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Self::Item(parent, index) => {
                parent.write_path(path);
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }

    /// How a message names the value: `"timeout"`, `each item of "steps"`.
    fn subject(&self) -> String {
        match self {
            Self::Root => "the workflow".to_owned(),
            Self::Field(_, key) => format!("\"{key}\""),
            Self::Item(parent, _) => format!("each item of {}", parent.subject()),
        }
    }
}

struct ShapeCheck<'t> {
    tree: &'t Tree,
    errors: Vec<ValidationError>,
}

impl ShapeCheck<'_> {
    fn check(&mut self, value: &mut Value, id: ShapeId, place: &Place) {
        if value.is_null() && matches!(self.tree.get(id).node, Node::Nullable(_)) {
            return;
        }
        match self.tree.base(id) {
            Node::Any => {}
            Node::Object { .. } => match value {
                Value::Object(map) => self.object(map, id, place),
                _ => self.mismatch(value, id, place),
            },
            Node::List(item) => match value {
                Value::Array(items) => {
                    let item = *item;
                    for (index, value) in items.iter_mut().enumerate() {
                        self.check(value, item, &Place::Item(place, index));
                    }
                }
                _ => self.mismatch(value, id, place),
            },
            Node::OneOf(variants) => match self.variant_for(value, variants) {
                Variant::Accepted => {}
                Variant::Inside(variant) => self.check(value, variant, place),
                Variant::None => self.mismatch(value, id, place),
            },
            _ => {
                if !self.accepts(id, value) {
                    self.mismatch(value, id, place);
                }
            }
        }
    }

    /// Checks the fields an object shape names, then its other keys when the shape says
    /// what they hold (`env`'s values, `files`' contents).
    fn object(&mut self, map: &mut Map<String, Value>, id: ShapeId, place: &Place) {
        let Node::Object { fields, rest, .. } = self.tree.base(id) else {
            return;
        };
        for field in fields {
            let at = Place::Field(place, &field.key);
            match map.get_mut(&field.key) {
                Some(value) => self.check(value, field.shape, &at),
                None if field.required => {
                    let message = format!(
                        "{} is missing; it must be {}",
                        at.subject(),
                        self.tree.describe(field.shape)
                    );
                    self.errors.push(ValidationError::new(at.path(), message));
                    map.insert(field.key.clone(), self.tree.zero(field.shape));
                }
                None => {}
            }
        }
        if let Some(rest) = *rest {
            for (key, value) in map.iter_mut() {
                if !fields.iter().any(|field| field.key == *key) {
                    self.check(value, rest, &Place::Field(place, key));
                }
            }
        }
    }

    /// Which variant of an untagged enum a value is read as. An object goes into the object
    /// variant whose fields it uses (a param spec, not an object-valued default), else is
    /// taken as it is by an open variant, else goes into the one object variant; a list into
    /// the one list variant; a scalar must fit one variant as it is.
    fn variant_for(&self, value: &Value, variants: &[ShapeId]) -> Variant {
        let open = variants
            .iter()
            .any(|id| matches!(self.tree.base(*id), Node::Any));
        let inside = |wanted: fn(&Node) -> bool| {
            let mut matching = variants.iter().filter(|id| wanted(self.tree.base(**id)));
            match (matching.next(), matching.next()) {
                (Some(only), None) => Variant::Inside(*only),
                _ if open => Variant::Accepted,
                _ => Variant::None,
            }
        };
        match value {
            Value::Object(map) => {
                let uses_fields = variants.iter().find(|id| {
                    matches!(self.tree.base(**id), Node::Object { fields, .. }
                        if fields.iter().any(|field| map.contains_key(&field.key)))
                });
                match uses_fields {
                    Some(id) => Variant::Inside(*id),
                    None if open => Variant::Accepted,
                    None => inside(|node| matches!(node, Node::Object { .. })),
                }
            }
            Value::Array(_) => inside(|node| matches!(node, Node::List(_))),
            _ if open || variants.iter().any(|id| self.accepts(*id, value)) => Variant::Accepted,
            _ => Variant::None,
        }
    }

    /// Whether a scalar shape takes the value as it is.
    fn accepts(&self, id: ShapeId, value: &Value) -> bool {
        match (self.tree.base(id), value) {
            (_, Value::Null) => matches!(self.tree.get(id).node, Node::Nullable(_)),
            (Node::Any, _)
            | (Node::Text { .. }, Value::String(_))
            | (Node::Bool, Value::Bool(_)) => true,
            (Node::Choice(choices), Value::String(text)) => choices.contains(text),
            (Node::Integer { min, max }, Value::Number(number)) => number
                .as_i64()
                .is_some_and(|number| (*min..=*max).contains(&number)),
            (Node::Number { min }, Value::Number(number)) => number
                .as_f64()
                .is_some_and(|number| min.is_none_or(|min| number >= min)),
            (Node::OneOf(variants), _) => variants.iter().any(|id| self.accepts(*id, value)),
            _ => false,
        }
    }

    /// Reports a value that is not what its shape says and puts the shape's emptiest value in
    /// its place: problems `validate` then finds at or inside this path are the same problem.
    fn mismatch(&mut self, value: &mut Value, id: ShapeId, place: &Place) {
        let message = format!(
            "{} must be {}, not {}",
            place.subject(),
            self.tree.describe(id),
            found(value)
        );
        self.errors
            .push(ValidationError::new(place.path(), message));
        *value = self.tree.zero(id);
    }
}

enum Variant {
    /// The value is fine as it is.
    Accepted,
    /// The value is checked as this variant.
    Inside(ShapeId),
    None,
}

/// What a message says was found: numbers and short strings as they are, else their type.
fn found(value: &Value) -> Cow<'static, str> {
    const SHOWN: usize = 40;
    match value {
        Value::Number(number) => Cow::Owned(number.to_string()),
        Value::String(text) if text.len() <= SHOWN && !text.contains('\n') => {
            Cow::Owned(format!("{text:?}"))
        }
        other => Cow::Borrowed(type_name(other)),
    }
}
