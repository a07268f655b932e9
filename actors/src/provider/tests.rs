//! Fixture-driven tests of the protocol decoders and request encoders.
//!
//! Every captured chat-protocol body under `tests/fixtures/protocols/` is decoded whole,
//! byte by byte and split in two at every byte offset, and must always produce the same
//! events, which must match the expectations below (derived from the captures by hand).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::codec::{StreamDecoder, encode_request, parse_response};
use super::event::{FinishReason, LlmEvent, ProviderError, Usage};
use super::message::{ChatMessage, ChatRequest, ToolCall, ToolSpec};
use super::prefix::ToolCatalog;
use super::preset::Protocol;
use super::transcript::Transcript;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/protocols/");

/// What decoding one fixture must produce.
struct Expected {
    fixture: &'static str,
    text: &'static str,
    reasoning: &'static str,
    /// `(id, name, arguments)`; `None` ids must have been generated.
    tool_calls: Vec<(Option<&'static str>, &'static str, Value)>,
    usage: Option<Usage>,
    end: LlmEvent,
}

fn finished(reason: FinishReason) -> LlmEvent {
    LlmEvent::Finished { reason }
}

fn expectations() -> Vec<Expected> {
    vec![
        Expected {
            fixture: "anthropic_messages_nonstream_text.json",
            text: concat!(
                "Hello! I'm doing well, thanks for asking. How are you doing today? ",
                "Is there anything I can help you with?",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 12,
                output: 29,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "anthropic_messages_nonstream_tool_use.json",
            text: concat!(
                "<thinking>\nThe updateIssueList tool was provided in the list ",
                "of available functions. The tool has no required parameters, ",
                "so it can be called without any additional information needed ",
                "from the user.\n</thinking>\n\nOkay, I will update the current issue ",
                "list:",
            ),
            reasoning: "",
            tool_calls: vec![(
                Some("toolu_01LRmxn9vGM1d2DZSDBowdZ1"),
                "updateIssueList",
                json!({}),
            )],
            usage: Some(Usage {
                input: 602,
                output: 93,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "anthropic_messages_stream_error_overloaded_CONSTRUCTED.sse",
            text: "Hel",
            reasoning: "",
            tool_calls: vec![],
            usage: None,
            end: LlmEvent::Failed(ProviderError::UpstreamUnavailable {
                status: None,
                message: "Overloaded".into(),
            }),
        },
        Expected {
            fixture: "anthropic_messages_stream_text.sse",
            text: "Hello there!",
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 11,
                output: 6,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "anthropic_messages_stream_text_2025.chunks.jsonl",
            text: concat!(
                "Hello! I'm doing well, thank you for asking. How are you doing ",
                "today? Is there anything I can help you with?",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 12,
                output: 30,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "anthropic_messages_stream_text_claude37.sse",
            text: concat!(
                "I'm Claude, an AI assistant made by Anthropic. I'm designed to ",
                "be helpful, harmless, and honest in my interactions. I can assist ",
                "with a wide range of tasks like answering questions, providing ",
                "information, creative writing, summarizing content, and having ",
                "thoughtful conversations. I'm constantly learning but I do have ",
                "limitations - I don't have the ability to browse the web, run ",
                "code, or access files unless you share them with me directly. ",
                "How can I help you today?",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 11,
                output: 104,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "anthropic_messages_stream_tool_no_args.chunks.jsonl",
            text: "I'll update the issue list for you.",
            reasoning: "",
            tool_calls: vec![(
                Some("toolu_01QE1WLsSVp5hy5Q3GmGTmjP"),
                "updateIssueList",
                json!({}),
            )],
            usage: Some(Usage {
                input: 565,
                output: 48,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "anthropic_messages_stream_tool_use.sse",
            text: "I'll check the current weather in Paris for you.",
            reasoning: "",
            tool_calls: vec![(
                Some("toolu_01NRLabsLyVHZPKxbKvkfSMn"),
                "get_weather",
                json!({"location": "Paris"}),
            )],
            usage: Some(Usage {
                input: 377,
                output: 65,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "anthropic_messages_stream_tool_use_padded.sse",
            text: concat!(
                "I'll help you find information about the Tigers game today and ",
                "provide weather advice for appropriate clothing. Let me check ",
                "both for you.\n\nFirst, let me search for the Tigers game schedule:",
            ),
            reasoning: "",
            tool_calls: vec![(
                Some("toolu_014cZKakAghgvhi4Y99XBUru"),
                "search",
                json!({"query": "Detroit Tigers baseball game today time schedule"}),
            )],
            usage: Some(Usage {
                input: 465,
                output: 96,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "deepseek_chat_stream_reasoning_content_tool_call.chunks.jsonl",
            text: "",
            reasoning: concat!(
                "The user is asking for the weather in San Francisco. I need to ",
                "use the weather tool to get this information. Let me invoke the ",
                "weather tool with the location parameter set to \"San Francisco\".",
            ),
            tool_calls: vec![(
                Some("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF"),
                "weather",
                json!({"location": "San Francisco"}),
            )],
            usage: Some(Usage {
                input: 339,
                output: 83,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "groq_chat_nonstream_tool_call.json",
            text: "",
            reasoning: "",
            tool_calls: vec![(Some("ax9fskhev"), "weather", json!({}))],
            usage: Some(Usage {
                input: 218,
                output: 15,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "groq_chat_stream_tool_call_x_groq.chunks.jsonl",
            text: "",
            reasoning: "",
            tool_calls: vec![(Some("tk85n1k4m"), "weather", json!({}))],
            usage: Some(Usage {
                input: 210,
                output: 15,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "ollama_api_chat_stream_text.ndjson",
            text: concat!(
                "I am Granite, a language model developed by IBM in 2024. I am ",
                "designed to understand and respond to a wide range of questions ",
                "and prompts.",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 37,
                output: 37,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "ollama_api_chat_stream_thinking.ndjson",
            text: concat!(
                "Sure thing! Let me know what you'd like to test or if there's ",
                "anything specific you need.",
            ),
            reasoning: concat!(
                "The user says \"Test prompt\". Likely they are just testing the ",
                "system. We should respond with a simple acknowledgment. Possibly ",
                "\"Sure, how can I help?\" or \"Testing successful.\" We can respond ",
                "politely. No special instructions.",
            ),
            tool_calls: vec![],
            usage: Some(Usage {
                input: 69,
                output: 76,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "ollama_api_chat_stream_tool_calls.ndjson",
            text: "",
            reasoning: "",
            tool_calls: vec![
                (None, "weather", json!({"city": "Detroit"})),
                (
                    None,
                    "search",
                    json!({"query": "Detroit Tigers game time today"}),
                ),
            ],
            usage: Some(Usage {
                input: 218,
                output: 306,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "openai_chat_nonstream_parallel_tool_calls.json",
            text: "",
            reasoning: "",
            tool_calls: vec![
                (
                    Some("call_fdNz3vOBKYgOIpMdWotB9MjY"),
                    "GetWeatherArgs",
                    json!({"city": "Edinburgh", "country": "GB", "units": "c"}),
                ),
                (
                    Some("call_h1DWI1POMJLb0KwIyQHWXD4p"),
                    "get_stock_price",
                    json!({"ticker": "AAPL", "exchange": "NASDAQ"}),
                ),
            ],
            usage: Some(Usage {
                input: 149,
                output: 60,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "openai_chat_nonstream_text.json",
            text: concat!(
                "**Holiday Name:** Galaxy Day  \n\n**Date:** October 31st, aligning ",
                "with the night sky's peak viewing of constellations and celestial ",
                "events.  \n\n**Purpose:** Galaxy Day celebrates the universe's ",
                "vastness, beauty, and our collective curiosity about the cosmos. ",
                "It's a time to honor science, imagination, and our shared human ",
                "wonder about the stars and beyond.  \n\n**Traditions:**  \n\n1. **Stargazing ",
                "Festivals:** Communities host outdoor gatherings in parks, rooftops, ",
                "or open fields. People set up telescopes, enjoy guided stargazing ",
                "sessions, and share stories about space, astronomy, and mythologies ",
                "linked to constellations.  \n\n2. **Cosmic Costumes:** Participants ",
                "dress up as planets, stars, astronauts, aliens, or celestial ",
                "phenomena. Parades and costume contests encourage creativity ",
                "inspired by the universe's mysteries.  \n\n3. **Celestial Art:** ",
                "Art installations and light shows depict galaxies, nebulae, and ",
                "astronomical phenomena. Schools and galleries often hold exhibitions ",
                "or workshops focusing on space-inspired creativity.  \n\n4. **Educational ",
                "Activities:** Museums and science centers offer special exhibits, ",
                "planetarium shows, and activities for all ages to learn about ",
                "space exploration, astronomy, and the universe's origins.  \n\n5. ",
                "**Offering of Light:** In homage to distant stars, families and ",
                "communities light candles or lanterns, symbolizing hope, curiosity, ",
                "and the idea that even the smallest light can illuminate vast ",
                "darkness—mirroring our quest to find knowledge amidst the cosmos. ",
                " \n\n6. **Global Connection:** As Galaxy Day emphasizes shared ",
                "wonder, people are encouraged to connect virtually with friends ",
                "or communities worldwide to share discoveries, stories, and aspirations ",
                "related to space.  \n\nGalaxy Day fosters a sense of unity, exploration, ",
                "and awe, inspiring individuals to look up and dream beyond our ",
                "world.",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 16,
                output: 363,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_finish_length.sse",
            text: "{\"",
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 79,
                output: 1,
            }),
            end: finished(FinishReason::Length),
        },
        Expected {
            fixture: "openai_chat_stream_logprobs.sse",
            text: "Foo!",
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 9,
                output: 2,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_n3_choices.sse",
            text: "{\"city\":\"San Francisco\",\"temperature\":65,\"units\":\"f\"}",
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 79,
                output: 42,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_parallel_tool_calls.sse",
            text: "",
            reasoning: "",
            tool_calls: vec![
                (
                    Some("call_JMW1whyEaYG438VE1OIflxA2"),
                    "GetWeatherArgs",
                    json!({"city": "Edinburgh", "country": "GB", "units": "c"}),
                ),
                (
                    Some("call_DNYTawLBoN8fj3KN6qU9N1Ou"),
                    "get_stock_price",
                    json!({"ticker": "AAPL", "exchange": "NASDAQ"}),
                ),
            ],
            usage: Some(Usage {
                input: 149,
                output: 60,
            }),
            end: finished(FinishReason::ToolCalls),
        },
        Expected {
            fixture: "openai_chat_stream_refusal.sse",
            text: "I'm sorry, I can't assist with that request.",
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 79,
                output: 11,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_text.sse",
            text: concat!(
                "I'm unable to provide real-time weather updates. To get the current ",
                "weather in San Francisco, I recommend checking a reliable weather ",
                "website or a weather app.",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 14,
                output: 30,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_text_2026_obfuscation.chunks.jsonl",
            text: concat!(
                "**Holiday Name:** Harmony Day\n\n**Date:** Celebrated annually ",
                "on the first Saturday of May\n\n**Purpose:** Harmony Day is dedicated ",
                "to fostering understanding, kindness, and unity among diverse ",
                "communities. It emphasizes celebrating cultural differences while ",
                "promoting empathy and collaboration.\n\n**Traditions:**\n\n1. **Cultural ",
                "Potluck Gatherings:** Communities come together to share traditional ",
                "dishes from their backgrounds, encouraging conversation and curiosity ",
                "about different cultures.\n\n2. **Story Circles:** People of all ",
                "ages are encouraged to share stories from their heritage or personal ",
                "experiences that promote understanding and empathy.\n\n3. **Decorate ",
                "for Unity:** Public spaces and homes are decorated with symbols ",
                "representing different cultures—flags, traditional art, and meaningful ",
                "motifs—to visually celebrate diversity.\n\n4. **Collaborative Art ",
                "Projects:** Communities create murals or sculptures that symbolize ",
                "unity and diversity, involving artists and residents of all ages.\n\n5. ",
                "**Acts of Kindness:** As a central activity, participants perform ",
                "Small acts of kindness throughout the day, such as volunteering, ",
                "helping neighbors, or inviting someone new to join festivities.\n\n6. ",
                "**Music & Dance Festivals:** Local performances showcase a variety ",
                "of musical styles and dances from different parts of the world, ",
                "emphasizing shared joy and creativity.\n\n7. **Educational Workshops:** ",
                "Interactive sessions teach about various cultures’ histories, ",
                "traditions, and celebrations, fostering respect and knowledge.\n\n**Overall ",
                "Spirit:** Harmony Day aims to create a sense of global community, ",
                "reminding everyone that despite our differences, we are all connected ",
                "through shared human experiences and mutual respect.",
            ),
            reasoning: "",
            tool_calls: vec![],
            usage: Some(Usage {
                input: 16,
                output: 300,
            }),
            end: finished(FinishReason::Stop),
        },
        Expected {
            fixture: "openai_chat_stream_tool_calls.sse",
            text: "",
            reasoning: "",
            tool_calls: vec![(
                Some("call_4XzlGBLtUe9dy3GVNV4jhq7h"),
                "get_weather",
                json!({"city": "New York City"}),
            )],
            usage: Some(Usage {
                input: 44,
                output: 16,
            }),
            end: finished(FinishReason::ToolCalls),
        },
    ]
}

/// Fixtures of the upstream chat protocols we consume (not the Responses API, not the
/// AI SDK formats, not bare error bodies).
fn is_chat_fixture(name: &str) -> bool {
    [
        "openai_chat_",
        "groq_",
        "deepseek_",
        "anthropic_messages_",
        "ollama_api_chat_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

fn protocol_of(fixture: &str) -> Protocol {
    if fixture.starts_with("anthropic_") {
        Protocol::AnthropicMessages
    } else if fixture.starts_with("ollama_") {
        Protocol::OllamaChat
    } else {
        Protocol::OpenAiChat
    }
}

fn is_streamed(fixture: &str) -> bool {
    !fixture.ends_with(".json")
}

/// The response body a fixture stands for: `.chunks.jsonl` files hold one SSE data payload
/// per line, re-wrapped here (with OpenAI's `[DONE]`); everything else is the raw body.
fn body_of(fixture: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("{FIXTURES}{fixture}")).unwrap();
    if !fixture.ends_with(".chunks.jsonl") {
        return raw;
    }
    let text = String::from_utf8(raw).unwrap();
    let mut body = String::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        body.push_str(&format!("data: {line}\n\n"));
    }
    if protocol_of(fixture) == Protocol::OpenAiChat {
        body.push_str("data: [DONE]\n\n");
    }
    body.into_bytes()
}

fn decode_chunks(protocol: Protocol, chunks: &[&[u8]]) -> Vec<LlmEvent> {
    let mut decoder = StreamDecoder::new(protocol).unwrap();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut events);
    }
    decoder.finish(&mut events);
    events
}

fn is_generated_id(id: &str) -> bool {
    id.strip_prefix("call_").is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// Generated ids differ per run; blank them so runs compare equal.
fn without_generated_ids(mut events: Vec<LlmEvent>) -> Vec<LlmEvent> {
    for event in &mut events {
        if let LlmEvent::ToolCall(call) = event
            && is_generated_id(&call.id)
        {
            call.id = "call_<generated>".into();
        }
    }
    events
}

/// Checks the event grammar and that the events carry exactly what `expected` says.
fn assert_matches(events: &[LlmEvent], expected: &Expected) {
    let name = expected.fixture;
    let (last, body) = events
        .split_last()
        .unwrap_or_else(|| panic!("{name}: no events"));
    assert_eq!(last, &expected.end, "{name}: last event");
    let (usage, deltas) = match body.split_last() {
        Some((LlmEvent::Usage(usage), deltas)) => (Some(*usage), deltas),
        _ => (None, body),
    };
    assert_eq!(usage, expected.usage, "{name}: usage");
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for event in deltas {
        match event {
            LlmEvent::TextDelta(delta) => text.push_str(delta),
            LlmEvent::ReasoningDelta(delta) => reasoning.push_str(delta),
            LlmEvent::ToolCall(call) => calls.push(call),
            other => panic!("{name}: unexpected {other:?} before the end"),
        }
    }
    assert_eq!(text, expected.text, "{name}: text");
    assert_eq!(reasoning, expected.reasoning, "{name}: reasoning");
    assert_eq!(
        calls.len(),
        expected.tool_calls.len(),
        "{name}: tool calls {calls:?}"
    );
    for (call, (id, tool, arguments)) in calls.iter().zip(&expected.tool_calls) {
        match id {
            Some(id) => assert_eq!(&call.id, id, "{name}: tool call id"),
            None => assert!(
                is_generated_id(&call.id),
                "{name}: {} not generated",
                call.id
            ),
        }
        assert_eq!(&call.name, tool, "{name}: tool call name");
        assert_eq!(&call.arguments, arguments, "{name}: tool call arguments");
    }
}

#[test]
fn every_chat_fixture_has_expectations() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| is_chat_fixture(name))
        .collect();
    let expected: BTreeSet<String> = expectations()
        .iter()
        .map(|expected| expected.fixture.to_owned())
        .collect();
    assert_eq!(on_disk, expected);
}

#[test]
fn non_streamed_fixtures_parse_to_the_expected_events() {
    for expected in expectations().iter().filter(|e| !is_streamed(e.fixture)) {
        let events = parse_response(protocol_of(expected.fixture), &body_of(expected.fixture));
        assert_matches(&events.unwrap(), expected);
    }
}

/// Splitting at every offset costs a full decode per offset, so bodies above this size
/// are cut down to their first and last events for that check (their full body is still
/// decoded whole and byte by byte).
const EXHAUSTIVE_SPLIT_LIMIT: usize = 8 * 1024;

/// `body` itself if small, else its leading and trailing events up to about
/// `EXHAUSTIVE_SPLIT_LIMIT / 2` bytes each: still a complete stream in the same protocol.
fn cut_down(body: &[u8], protocol: Protocol) -> Vec<u8> {
    if body.len() <= EXHAUSTIVE_SPLIT_LIMIT {
        return body.to_vec();
    }
    let separator: &[u8] = match protocol {
        Protocol::OllamaChat => b"\n",
        _ => b"\n\n",
    };
    let event_ends: Vec<usize> = body
        .windows(separator.len())
        .enumerate()
        .filter(|(_, window)| *window == separator)
        .map(|(at, _)| at + separator.len())
        .collect();
    let half = EXHAUSTIVE_SPLIT_LIMIT / 2;
    let head_end = event_ends.iter().copied().find(|&end| end >= half).unwrap();
    let tail_start = event_ends
        .iter()
        .copied()
        .rfind(|&end| end <= body.len() - half)
        .unwrap();
    assert!(head_end <= tail_start);
    [&body[..head_end], &body[tail_start..]].concat()
}

#[test]
fn streamed_fixtures_decode_identically_however_the_body_is_split() {
    for expected in expectations().iter().filter(|e| is_streamed(e.fixture)) {
        let name = expected.fixture;
        let protocol = protocol_of(name);
        let body = body_of(name);
        let whole = decode_chunks(protocol, &[&body]);
        assert_matches(&whole, expected);
        let whole = without_generated_ids(whole);

        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(
            without_generated_ids(decode_chunks(protocol, &bytewise)),
            whole,
            "{name}: fed byte by byte"
        );

        let body = cut_down(&body, protocol);
        let reference = without_generated_ids(decode_chunks(protocol, &[&body]));
        assert_eq!(
            reference.last(),
            whole.last(),
            "{name}: the cut-down body still ends well"
        );
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let offsets: Vec<usize> = (0..=body.len()).collect();
        std::thread::scope(|scope| {
            for share in offsets.chunks(offsets.len().div_ceil(threads)) {
                let (body, reference) = (&body, &reference);
                scope.spawn(move || {
                    for &split in share {
                        let events = decode_chunks(protocol, &[&body[..split], &body[split..]]);
                        assert_eq!(
                            without_generated_ids(events),
                            *reference,
                            "{name}: split at {split}"
                        );
                    }
                });
            }
        });
    }
}

/// Where each event of `body` ends, for `protocol`'s framing.
fn event_ends(body: &[u8], protocol: Protocol) -> Vec<usize> {
    let separator: &[u8] = match protocol {
        Protocol::OllamaChat => b"\n",
        _ => b"\n\n",
    };
    let mut ends: Vec<usize> = body
        .windows(separator.len())
        .enumerate()
        .filter(|(_, window)| *window == separator)
        .map(|(at, _)| at + separator.len())
        .collect();
    if ends.last() != Some(&body.len()) {
        ends.push(body.len());
    }
    ends
}

#[test]
fn truncated_streams_fail_with_a_protocol_error() {
    for expected in expectations().iter().filter(|e| is_streamed(e.fixture)) {
        let name = expected.fixture;
        let protocol = protocol_of(name);
        let body = cut_down(&body_of(name), protocol);
        let reference = without_generated_ids(decode_chunks(protocol, &[&body]));
        let ends = event_ends(&body, protocol);
        let mut cuts = vec![0];
        for pair in ends.windows(2) {
            // Just after an event, and in the middle of the next one.
            cuts.extend([pair[0], (pair[0] + pair[1]) / 2]);
        }
        for cut in cuts.into_iter().filter(|&cut| cut < body.len()) {
            let events = without_generated_ids(decode_chunks(protocol, &[&body[..cut]]));
            if events == reference {
                // Cut inside the terminator's trailing blank line: the stream is complete.
                continue;
            }
            let (last, before) = events.split_last().unwrap();
            assert!(
                matches!(last, LlmEvent::Failed(ProviderError::Protocol { .. })),
                "{name}: cut at {cut} ended with {last:?}"
            );
            assert!(
                reference.starts_with(before),
                "{name}: cut at {cut} produced events the full stream does not"
            );
        }
    }
}

fn openai_stream(payloads: &[&str]) -> Vec<LlmEvent> {
    let body: String = payloads
        .iter()
        .map(|data| format!("data: {data}\n\n"))
        .collect();
    decode_chunks(Protocol::OpenAiChat, &[body.as_bytes()])
}

fn is_protocol_error(event: Option<&LlmEvent>) -> bool {
    matches!(
        event,
        Some(LlmEvent::Failed(ProviderError::Protocol { .. }))
    )
}

#[test]
fn malformed_payloads_fail_with_a_protocol_error_and_nothing_after() {
    let events = openai_stream(&[
        r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"#,
        r#"{"choices":[{"index":0,"delta":{"content":"never"}}]}"#,
        "[DONE]",
    ]);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], LlmEvent::TextDelta("hi".into()));
    assert!(is_protocol_error(events.get(1)));

    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n\
                event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n\n\
                event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let events = decode_chunks(Protocol::AnthropicMessages, &[body.as_bytes()]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(is_protocol_error(events.first()));

    let body = "{\"message\":{\"content\":\"a\"},\"done\":false}\nnot json\n{\"done\":true}\n";
    let events = decode_chunks(Protocol::OllamaChat, &[body.as_bytes()]);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(is_protocol_error(events.get(1)));
}

#[test]
fn in_stream_errors_fail_the_stream() {
    let events = openai_stream(&[
        r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
        r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#,
        "[DONE]",
    ]);
    assert_eq!(
        events,
        [
            LlmEvent::TextDelta("hi".into()),
            LlmEvent::Failed(ProviderError::UpstreamUnavailable {
                status: None,
                message: "The server had an error".into(),
            }),
        ]
    );

    let body =
        b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"error\":\"model runner crashed\"}\n";
    let events = decode_chunks(Protocol::OllamaChat, &[body]);
    assert!(
        matches!(&events[1], LlmEvent::Failed(error) if error.message().contains("model runner crashed")),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
}

#[test]
fn openai_tool_calls_get_ids_and_empty_arguments_become_objects() {
    let events = openai_stream(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"type":"function","function":{"name":"ping","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
        "[DONE]",
    ]);
    let LlmEvent::ToolCall(call) = &events[0] else {
        panic!("{events:?}");
    };
    assert!(is_generated_id(&call.id), "{}", call.id);
    assert_eq!(call.arguments, json!({}));
    // The vendor said `stop`, but the turn ended in a tool call.
    assert_eq!(events[1..], [finished(FinishReason::ToolCalls)]);
}

#[test]
fn openai_whole_tool_calls_without_index_stay_apart() {
    let events = openai_stream(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":1}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ]);
    let calls: Vec<(&str, &str, &Value)> = events
        .iter()
        .filter_map(|event| match event {
            LlmEvent::ToolCall(call) => {
                Some((call.id.as_str(), call.name.as_str(), &call.arguments))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [("a", "f", &json!({"x": 1})), ("b", "g", &json!({}))]
    );
}

#[test]
fn openai_unparseable_tool_arguments_fail_the_stream() {
    let events = openai_stream(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(is_protocol_error(events.first()));
}

#[test]
fn input_after_the_terminator_is_ignored() {
    let mut decoder = StreamDecoder::new(Protocol::OpenAiChat).unwrap();
    let mut events = Vec::new();
    decoder.feed(b"data: [DONE]\n\ndata: {\"choices\":[", &mut events);
    assert!(decoder.is_done());
    decoder.feed(b"garbage\n\n", &mut events);
    decoder.finish(&mut events);
    assert_eq!(events, [finished(FinishReason::Stop)]);
}

#[test]
fn the_offline_planner_has_no_wire_format() {
    assert!(StreamDecoder::new(Protocol::Offline).is_none());
    assert!(encode_request(Protocol::Offline, &conversation(false)).is_none());
    assert!(parse_response(Protocol::Offline, b"{}").is_none());
}

/// A turn with two tool calls, one failed result, and a follow-up.
fn conversation(stream: bool) -> ChatRequest {
    let weather = ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Paris"}),
    };
    let time = ToolCall {
        id: "call_2".into(),
        name: "get_time".into(),
        arguments: json!({}),
    };
    ChatRequest {
        model: "some-model".into(),
        system: Some("Be brief.".into()),
        messages: vec![
            ChatMessage::user("Weather and time in Paris?"),
            ChatMessage::Assistant {
                content: Some("Checking.".into()),
                tool_calls: vec![weather.clone(), time.clone()],
            },
            ChatMessage::tool_result(&weather, "18°C, sunny", false),
            ChatMessage::tool_result(&time, "clock unavailable", true),
            ChatMessage::assistant_text("18°C and sunny; the time is unknown."),
            ChatMessage::user("Thanks!"),
        ]
        .into(),
        tools: vec![
            ToolSpec {
                name: "get_weather".into(),
                description: "Current weather for a city".into(),
                parameters: weather_schema(),
            },
            ToolSpec {
                name: "get_time".into(),
                description: String::new(),
                parameters: Value::Null,
            },
        ]
        .into(),
        max_tokens: Some(256),
        temperature: Some(0.2),
        stream,
    }
}

/// The body `protocol` sends for `request`, as JSON.
fn encoded(protocol: Protocol, request: &ChatRequest) -> Value {
    serde_json::from_slice(&encode_request(protocol, request).unwrap()).unwrap()
}

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    })
}

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

#[test]
fn requests_survive_serde_unchanged() {
    let request = conversation(true);
    let stored = serde_json::to_string(&request).unwrap();
    assert_eq!(
        serde_json::from_str::<ChatRequest>(&stored).unwrap(),
        request
    );
}

#[test]
fn openai_request_encoding() {
    let body = encoded(Protocol::OpenAiChat, &conversation(true));
    assert_eq!(
        body,
        json!({
            "model": "some-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "Error: clock unavailable"},
                {"role": "assistant", "content": "18°C and sunny; the time is unknown."},
                {"role": "user", "content": "Thanks!"},
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": weather_schema(),
                }},
                {"type": "function", "function": {
                    "name": "get_time", "description": "", "parameters": empty_schema(),
                }},
            ],
            "max_tokens": 256,
            "temperature": 0.2,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );

    let mut request = conversation(false);
    request.messages = vec![ChatMessage::Assistant {
        content: None,
        tool_calls: vec![],
    }]
    .into();
    request.tools = ToolCatalog::default();
    request.system = None;
    request.max_tokens = None;
    request.temperature = None;
    assert_eq!(
        encoded(Protocol::OpenAiChat, &request),
        json!({
            "model": "some-model",
            "messages": [{"role": "assistant", "content": ""}],
            "stream": false,
        })
    );
}

#[test]
fn anthropic_request_encoding() {
    let body = encoded(Protocol::AnthropicMessages, &conversation(true));
    assert_eq!(
        body,
        json!({
            "model": "some-model",
            "max_tokens": 256,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather and time in Paris?"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
                ]},
                // Both results share one user turn.
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C, sunny",
                     "is_error": false},
                    {"type": "tool_result", "tool_use_id": "call_2",
                     "content": "clock unavailable", "is_error": true},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "18°C and sunny; the time is unknown."},
                ]},
                {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
            ],
            "tools": [
                {"name": "get_weather", "description": "Current weather for a city",
                 "input_schema": weather_schema()},
                {"name": "get_time", "input_schema": empty_schema()},
            ],
            "temperature": 0.2,
            "stream": true,
        })
    );

    let mut request = conversation(false);
    request.max_tokens = None;
    request.system = None;
    // A tool result followed by the user's next words still makes one user turn.
    let mut messages = request.messages.into_vec();
    messages.remove(4);
    request.messages = messages.into();
    let body = encoded(Protocol::AnthropicMessages, &request);
    assert_eq!(body["max_tokens"], 4096);
    assert!(body.get("system").is_none());
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|turn| turn["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        body["messages"][2]["content"][2],
        json!({"type": "text", "text": "Thanks!"})
    );
}

#[test]
fn ollama_request_encoding() {
    let body = encoded(Protocol::OllamaChat, &conversation(true));
    assert_eq!(
        body,
        json!({
            "model": "some-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                ]},
                {"role": "tool", "content": "18°C, sunny", "tool_name": "get_weather"},
                {"role": "tool", "content": "Error: clock unavailable", "tool_name": "get_time"},
                {"role": "assistant", "content": "18°C and sunny; the time is unknown."},
                {"role": "user", "content": "Thanks!"},
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": weather_schema(),
                }},
                {"type": "function", "function": {
                    "name": "get_time", "description": "", "parameters": empty_schema(),
                }},
            ],
            "options": {"num_predict": 256, "temperature": 0.2},
            "stream": true,
        })
    );
}

#[test]
fn anthropic_bodies_leave_out_what_messages_rejects() {
    let odd = ToolCall {
        id: "toolu_1".into(),
        name: "list_runners".into(),
        // Arguments are objects when decoded; a stored transcript may still hold anything.
        arguments: json!(["not", "an", "object"]),
    };
    let request = bare_request(
        "claude",
        "",
        vec![
            ChatMessage::user(""),
            ChatMessage::user("Say \"hi\"\n\tthen list runners — ünïcode"),
            ChatMessage::Assistant {
                content: Some(String::new()),
                tool_calls: Vec::new(),
            },
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![odd.clone()],
            },
            ChatMessage::tool_result(&odd, "", false),
            ChatMessage::Assistant {
                content: None,
                tool_calls: Vec::new(),
            },
        ],
    );
    assert_eq!(
        encoded(Protocol::AnthropicMessages, &request),
        json!({
            "model": "claude",
            "max_tokens": 4096,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Say \"hi\"\n\tthen list runners — ünïcode"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "list_runners", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": false},
                ]},
            ],
            "stream": false,
        })
    );

    // Nothing to send is an empty conversation, still valid JSON.
    let mut empty = request;
    empty.messages = Transcript::new();
    assert_eq!(
        encoded(Protocol::AnthropicMessages, &empty)["messages"],
        json!([])
    );
}

#[test]
fn ollama_bodies_without_limits_or_tools_have_no_options_or_tools() {
    let call = ToolCall {
        id: "call_9".into(),
        name: "get_time".into(),
        arguments: json!({}),
    };
    let request = bare_request(
        "llama3.2",
        "Line one\nline \"two\"",
        vec![
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![call.clone()],
            },
            ChatMessage::tool_result(&call, "12:00", false),
        ],
    );
    assert_eq!(
        encoded(Protocol::OllamaChat, &request),
        json!({
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "Line one\nline \"two\""},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_time", "arguments": {}}},
                ]},
                {"role": "tool", "content": "12:00", "tool_name": "get_time"},
            ],
            "stream": false,
        })
    );

    let mut only_temperature = request;
    only_temperature.system = None;
    only_temperature.temperature = Some(0.7);
    let body = encoded(Protocol::OllamaChat, &only_temperature);
    assert_eq!(body["options"], json!({"temperature": 0.7}));
    assert_eq!(body["messages"][0]["role"], "assistant");
}

/// A request with no tools and no limits, not streamed.
fn bare_request(model: &str, system: &str, messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        system: Some(system.into()),
        messages: messages.into(),
        tools: ToolCatalog::default(),
        max_tokens: None,
        temperature: None,
        stream: false,
    }
}
