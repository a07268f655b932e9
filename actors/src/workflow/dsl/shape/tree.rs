//! The shape of a workflow document as the model says it: the schema the model's `ToSchema`
//! derives produce, compiled once into a small tree that the shape check walks (references
//! resolved, `Option` fields nullable, integer formats and `minimum` attributes as ranges).
//! The tree also words each shape for messages ("a whole number (0 or more)", or the type's
//! `title`) and gives its emptiest value, which stands in for a bad value so that the rest of
//! the document still reads into the model.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat, SchemaType, Type,
};

use super::super::model::Workflow;

/// A shape's place in its [`Tree`].
pub(super) type ShapeId = usize;

/// What a value must be.
pub(super) enum Node {
    Any,
    /// `null` (absent) or the inner shape.
    Nullable(ShapeId),
    /// A string; `examples` are named in messages.
    Text {
        examples: Vec<String>,
    },
    /// One of these strings.
    Choice(Vec<String>),
    Bool,
    Integer {
        min: i64,
        max: i64,
    },
    Number {
        min: Option<f64>,
    },
    List(ShapeId),
    /// An object: its named fields, in the model's order, and what other keys hold (`None`:
    /// anything, they are kept as they are).
    Object {
        name: Option<String>,
        fields: Vec<Field>,
        rest: Option<ShapeId>,
    },
    /// Any one of these shapes (an untagged enum).
    OneOf(Vec<ShapeId>),
}

pub(super) struct Shape {
    pub node: Node,
    /// How messages name the shape, when the model gives it a `title`.
    pub title: Option<String>,
    /// The type's own description, which messages quote for a [`Node::Choice`].
    pub description: Option<String>,
}

pub(super) struct Field {
    pub key: String,
    pub shape: ShapeId,
    pub required: bool,
}

/// Shapes by id; the document's own shape is [`Tree::ROOT`].
pub(super) struct Tree {
    shapes: Vec<Shape>,
    /// Each shape in words, for messages; worded once, when the tree is built.
    phrases: Vec<String>,
}

/// The workflow document's shape, compiled on first use.
pub(super) static WORKFLOW: LazyLock<Tree> = LazyLock::new(Tree::of::<Workflow>);

impl Tree {
    pub const ROOT: ShapeId = 0;

    /// Compiles the schema `T` derives, with every schema it refers to.
    pub fn of<T: ToSchema>() -> Self {
        let mut components = Vec::new();
        T::schemas(&mut components);
        let mut compiler = Compiler {
            components: components.into_iter().collect(),
            named: HashMap::new(),
            shapes: Vec::new(),
        };
        compiler
            .components
            .insert(T::name().into_owned(), T::schema());
        let root = compiler.compile(&RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            T::name(),
        )));
        debug_assert_eq!(root, Self::ROOT);
        let mut tree = Self {
            shapes: compiler.shapes,
            phrases: Vec::new(),
        };
        tree.phrases = (0..tree.shapes.len()).map(|id| tree.phrase(id)).collect();
        tree
    }

    pub fn get(&self, id: ShapeId) -> &Shape {
        &self.shapes[id]
    }

    /// The shape a value is checked against once it is not `null`.
    pub fn base_id(&self, mut id: ShapeId) -> ShapeId {
        while let Node::Nullable(inner) = self.shapes[id].node {
            id = inner;
        }
        id
    }

    pub fn base(&self, id: ShapeId) -> &Node {
        &self.shapes[self.base_id(id)].node
    }

    /// "a whole number (0 or more)", "a string or a list of strings", or the type's title.
    pub fn describe(&self, id: ShapeId) -> &str {
        &self.phrases[id]
    }

    fn phrase(&self, id: ShapeId) -> String {
        let shape = &self.shapes[id];
        if let Some(title) = &shape.title {
            return title.clone();
        }
        match &shape.node {
            Node::Any => "any value".to_owned(),
            Node::Nullable(inner) => self.phrase(*inner),
            Node::Text { examples } if examples.is_empty() => "a string".to_owned(),
            Node::Text { examples } => {
                let shown: Vec<String> = examples
                    .iter()
                    .take(4)
                    .map(|example| format!("\"{example}\""))
                    .collect();
                format!("a string such as {}", either(&shown))
            }
            Node::Choice(choices) => {
                let quoted: Vec<String> = choices
                    .iter()
                    .map(|choice| format!("\"{choice}\""))
                    .collect();
                match &shape.description {
                    // The type's own words on what the choices mean.
                    Some(description) => {
                        let description = description.trim_end_matches('.');
                        let mut letters = description.chars();
                        let first = letters.next().map(|first| first.to_lowercase().to_string());
                        format!(
                            "{} ({}{})",
                            either(&quoted),
                            first.unwrap_or_default(),
                            letters.as_str()
                        )
                    }
                    None => either(&quoted),
                }
            }
            Node::Bool => "true or false".to_owned(),
            Node::Integer { min, .. } if *min > i64::from(i32::MIN) => {
                format!("a whole number ({min} or more)")
            }
            Node::Integer { .. } => "a whole number".to_owned(),
            Node::Number { min: Some(min) } => format!("a number ({min} or more)"),
            Node::Number { min: None } => "a number".to_owned(),
            Node::List(item) => match &self.shapes[*item].title {
                Some(title) => format!("a list, each {title}"),
                None => format!("a list of {}", self.plural(*item)),
            },
            Node::Object { .. } => "an object".to_owned(),
            Node::OneOf(variants) => {
                let each: Vec<String> = variants.iter().map(|id| self.phrase(*id)).collect();
                either(&each)
            }
        }
    }

    /// "strings", "step objects": what a list of this shape holds.
    fn plural(&self, id: ShapeId) -> String {
        match &self.shapes[id].node {
            Node::Any => "values".to_owned(),
            Node::Nullable(inner) => self.plural(*inner),
            Node::Text { .. } | Node::Choice(_) => "strings".to_owned(),
            Node::Bool => "booleans".to_owned(),
            Node::Integer { .. } => "whole numbers".to_owned(),
            Node::Number { .. } => "numbers".to_owned(),
            Node::List(_) => "lists".to_owned(),
            Node::Object {
                name: Some(name), ..
            } => format!("{} objects", words(name)),
            Node::Object { name: None, .. } => "objects".to_owned(),
            Node::OneOf(variants) => {
                let each: Vec<String> = variants.iter().map(|id| self.plural(*id)).collect();
                either(&each)
            }
        }
    }

    /// The emptiest value of the shape: what a bad value is replaced with.
    pub fn zero(&self, id: ShapeId) -> Value {
        match &self.shapes[id].node {
            Node::Any => Value::Null,
            Node::Nullable(inner) => self.zero(*inner),
            Node::Text { .. } => Value::String(String::new()),
            Node::Choice(choices) => choices.first().cloned().map_or(Value::Null, Value::String),
            Node::Bool => Value::Bool(false),
            Node::Integer { min, max } => Value::from(0.clamp(*min, *max)),
            Node::Number { min } => Value::from(min.unwrap_or(0.0).max(0.0)),
            Node::List(_) => Value::Array(Vec::new()),
            Node::Object { fields, .. } => Value::Object(
                fields
                    .iter()
                    .filter(|field| field.required)
                    .map(|field| (field.key.clone(), self.zero(field.shape)))
                    .collect::<Map<String, Value>>(),
            ),
            Node::OneOf(variants) => variants
                .first()
                .map_or(Value::Null, |first| self.zero(*first)),
        }
    }
}

/// "a", "a or b", "a, b or c".
fn either(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `PreconditionCheck` → "precondition check".
fn words(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len() + 4);
    for (index, letter) in type_name.chars().enumerate() {
        if letter.is_uppercase() && index > 0 {
            out.push(' ');
        }
        out.extend(letter.to_lowercase());
    }
    out
}

/// Builds the tree from utoipa's schema types.
struct Compiler {
    components: HashMap<String, RefOr<Schema>>,
    named: HashMap<String, ShapeId>,
    shapes: Vec<Shape>,
}

impl Compiler {
    fn reserve(&mut self) -> ShapeId {
        self.push(Node::Any)
    }

    fn push(&mut self, node: Node) -> ShapeId {
        self.shapes.push(Shape {
            node,
            title: None,
            description: None,
        });
        self.shapes.len() - 1
    }

    fn compile(&mut self, schema: &RefOr<Schema>) -> ShapeId {
        match schema {
            RefOr::Ref(reference) => {
                let name = reference
                    .ref_location
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(id) = self.named.get(&name) {
                    return *id;
                }
                // Reserved before compiling, so that a type that contains itself refers back.
                let id = self.reserve();
                self.named.insert(name.clone(), id);
                if let Some(component) = self.components.get(&name).cloned() {
                    self.shapes[id] = match component {
                        RefOr::T(schema) => self.shape_of(&schema, Some(&name)),
                        reference @ RefOr::Ref(_) => {
                            let target = self.compile(&reference);
                            alias(Node::OneOf(vec![target]))
                        }
                    };
                }
                id
            }
            RefOr::T(schema) => {
                let shape = self.shape_of(schema, None);
                self.shapes.push(shape);
                self.shapes.len() - 1
            }
        }
    }

    fn shape_of(&mut self, schema: &Schema, name: Option<&str>) -> Shape {
        match schema {
            Schema::Object(object) => {
                let (types, nullable) = types_of(&object.schema_type);
                let node = match types.first() {
                    Some(Type::String) => match &object.enum_values {
                        Some(values) => Node::Choice(
                            values.iter().filter_map(text).map(str::to_owned).collect(),
                        ),
                        None => Node::Text {
                            examples: object
                                .examples
                                .iter()
                                .filter_map(text)
                                .map(str::to_owned)
                                .collect(),
                        },
                    },
                    Some(Type::Boolean) => Node::Bool,
                    Some(Type::Integer) => {
                        let (low, high) = match &object.format {
                            Some(SchemaFormat::KnownFormat(KnownFormat::Int32)) => {
                                (i64::from(i32::MIN), i64::from(i32::MAX))
                            }
                            _ => (i64::MIN, i64::MAX),
                        };
                        Node::Integer {
                            min: object
                                .minimum
                                .as_ref()
                                .map_or(low, |min| real(min).ceil().max(low as f64) as i64),
                            max: object
                                .maximum
                                .as_ref()
                                .map_or(high, |max| real(max).floor().min(high as f64) as i64),
                        }
                    }
                    Some(Type::Number) => Node::Number {
                        min: object.minimum.as_ref().map(real),
                    },
                    Some(Type::Object) => {
                        let fields = object
                            .properties
                            .iter()
                            .map(|(key, schema)| Field {
                                key: key.clone(),
                                shape: self.compile(schema),
                                required: object.required.contains(key),
                            })
                            .collect();
                        let rest = match object.additional_properties.as_deref() {
                            Some(AdditionalProperties::RefOr(schema)) => {
                                let id = self.compile(schema);
                                (!matches!(self.shapes[id].node, Node::Any)).then_some(id)
                            }
                            _ => None,
                        };
                        Node::Object {
                            name: name.map(str::to_owned),
                            fields,
                            rest,
                        }
                    }
                    _ => Node::Any,
                };
                self.titled(
                    node,
                    nullable,
                    object.title.clone(),
                    object.description.clone(),
                )
            }
            Schema::Array(array) => {
                let (_, nullable) = types_of(&array.schema_type);
                let node = match &array.items {
                    ArrayItems::RefOrSchema(item) => Node::List(self.compile(item)),
                    _ => Node::List(self.reserve()),
                };
                self.titled(
                    node,
                    nullable,
                    array.title.clone(),
                    array.description.clone(),
                )
            }
            Schema::OneOf(one_of) => self.variants(
                &one_of.items,
                one_of.title.clone(),
                one_of.description.clone(),
            ),
            Schema::AnyOf(any_of) => self.variants(&any_of.items, None, any_of.description.clone()),
            _ => alias(Node::Any),
        }
    }

    /// An untagged enum (`oneOf`, or `anyOf` where variants overlap); `Option<T>` when one
    /// variant is `null`.
    fn variants(
        &mut self,
        items: &[RefOr<Schema>],
        title: Option<String>,
        description: Option<String>,
    ) -> Shape {
        let nullable = items.iter().any(is_null);
        let variants: Vec<ShapeId> = items
            .iter()
            .filter(|variant| !is_null(variant))
            .map(|variant| self.compile(variant))
            .collect();
        match variants[..] {
            // `Option<T>`: T's own title and description stay T's.
            [only] if nullable => alias(Node::Nullable(only)),
            _ => self.titled(Node::OneOf(variants), nullable, title, description),
        }
    }

    /// The shape, made nullable by wrapping it when the schema allows `null`.
    fn titled(
        &mut self,
        node: Node,
        nullable: bool,
        title: Option<String>,
        description: Option<String>,
    ) -> Shape {
        let description = description.map(|text| text.replace('\n', " "));
        if nullable && !matches!(node, Node::Nullable(_)) {
            let inner = self.push(node);
            self.shapes[inner].title = title;
            self.shapes[inner].description = description;
            return alias(Node::Nullable(inner));
        }
        Shape {
            node,
            title,
            description,
        }
    }
}

fn alias(node: Node) -> Shape {
    Shape {
        node,
        title: None,
        description: None,
    }
}

/// The JSON types a schema allows, without `null`, and whether it allows `null`.
fn types_of(schema_type: &SchemaType) -> (Vec<Type>, bool) {
    let all = match schema_type {
        SchemaType::Type(one) => vec![one.clone()],
        SchemaType::Array(many) => many.clone(),
        _ => Vec::new(),
    };
    let nullable = all.contains(&Type::Null);
    (
        all.into_iter().filter(|kind| *kind != Type::Null).collect(),
        nullable,
    )
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

fn real(number: &utoipa::Number) -> f64 {
    match number {
        utoipa::Number::Int(int) => *int as f64,
        utoipa::Number::UInt(uint) => *uint as f64,
        utoipa::Number::Float(float) => *float,
    }
}
