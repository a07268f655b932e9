//! Hostile inputs built from real ones: the fixtures, mutated and cut into chunks, and
//! generated SSE and NDJSON streams of arbitrary JSON.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: a short pass by default, `KUBIYA_FUZZ_CASES` for `make fuzz`.
pub fn config() -> Config {
    let cases = std::env::var("KUBIYA_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(48);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every file under `tests/fixtures/<dir>`, as bytes.
pub fn fixtures(dir: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("{}: {err}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// Repeat a slice many times (long lines, deep nesting).
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    /// Splice a slice of another seed in.
    Splice {
        at: usize,
        other: usize,
        from: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (
            any::<usize>(),
            prop::collection::vec(interesting_byte(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<usize>(), 1usize..16, 2usize..2000).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
        (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..256).prop_map(
            |(at, other, from, len)| Mutation::Splice {
                at,
                other,
                from,
                len
            }
        ),
    ]
}

/// Bytes that mean something to the parsers more often than chance would pick them.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"{}[]\":,\n\r \\:-&*!|>#%0123456789etnfu".to_vec()),
        1 => any::<u8>(),
    ]
}

fn apply(seed: &[u8], seeds: &[Vec<u8>], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for mutation in mutations {
        let at = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match mutation {
            Mutation::Flip { at: i, bit } => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] ^= 1 << bit;
                }
            }
            Mutation::Insert { at: i, bytes: new } => {
                let i = at(*i, bytes.len());
                bytes.splice(i..i, new.iter().copied());
            }
            Mutation::Remove { at: i, len } => {
                let i = at(*i, bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Repeat { at: i, len, times } => {
                let i = at(*i, bytes.len());
                let end = (i + len).min(bytes.len());
                let slice = bytes[i..end].to_vec();
                let repeated: Vec<u8> = slice
                    .iter()
                    .copied()
                    .cycle()
                    .take(slice.len() * times)
                    .collect();
                bytes.splice(end..end, repeated);
            }
            Mutation::Splice {
                at: i,
                other,
                from,
                len,
            } => {
                let source = &seeds[other % seeds.len()];
                let from = at(*from, source.len());
                let end = (from + len).min(source.len());
                let i = at(*i, bytes.len());
                bytes.splice(i..i, source[from..end].iter().copied());
            }
        }
    }
    bytes
}

/// A fixture from `seeds`, mutated 0 to 8 times.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    (0..count, prop::collection::vec(mutation(), 0..8))
        .prop_map(move |(index, mutations)| apply(&seeds[index], &seeds, &mutations))
}

/// Where to cut an input into the chunks a network would deliver.
pub fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..96, 0..24)
}

/// `bytes` cut at `cuts` (cycled), the rest in one piece.
pub fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    for cut in cuts {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*cut).min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    chunks
}

/// Arbitrary JSON, nested a few levels.
pub fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z_]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "choices",
                    "delta",
                    "content",
                    "tool_calls",
                    "index",
                    "id",
                    "function",
                    "name",
                    "arguments",
                    "finish_reason",
                    "usage",
                    "message",
                    "content_block",
                    "text",
                    "partial_json",
                    "stop_reason",
                    "done",
                    "error",
                    "input",
                    "step",
                    "status",
                    "output",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A stream of JSON events framed as SSE (`event:`/`data:` records) or as NDJSON lines.
pub fn framed_stream() -> impl Strategy<Value = Vec<u8>> {
    let event = (
        prop::option::of(prop::sample::select(vec![
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
            "error",
            "end",
        ])),
        json(),
    );
    (
        any::<bool>(),
        prop::collection::vec(event, 0..12),
        any::<bool>(),
    )
        .prop_map(|(sse, events, done)| {
            let mut out = String::new();
            for (name, data) in events {
                if sse {
                    if let Some(name) = name {
                        out.push_str(&format!("event: {name}\n"));
                    }
                    out.push_str(&format!("data: {data}\n\n"));
                } else {
                    out.push_str(&format!("{data}\n"));
                }
            }
            if done && sse {
                out.push_str("data: [DONE]\n\n");
            }
            out.into_bytes()
        })
}
