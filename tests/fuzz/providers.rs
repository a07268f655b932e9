//! The provider decoders of every protocol, streamed (in random chunks) and whole, on
//! mutated captured streams and generated SSE and NDJSON streams.

use kubiya_actors::provider::{Protocol, StreamDecoder, parse_response};
use proptest::prelude::*;

use crate::allocation::{assert_bounded, measure};
use crate::inputs::{chunks, config, cuts, fixtures, framed_stream, mutated};

const PROTOCOLS: [Protocol; 3] = [
    Protocol::OpenAiChat,
    Protocol::AnthropicMessages,
    Protocol::OllamaChat,
];

/// Feeds `input` to each protocol's stream decoder in `cuts`-sized chunks, then whole to its
/// body parser: no panic, bounded allocation, and no more events than input bytes.
fn decode_everywhere(input: &[u8], cuts: &[usize]) {
    for protocol in PROTOCOLS {
        let (events, peak) = measure(|| {
            let mut decoder = StreamDecoder::new(protocol).expect("a wire protocol");
            let mut events = Vec::new();
            for chunk in chunks(input, cuts) {
                decoder.feed(chunk, &mut events);
            }
            decoder.finish(&mut events);
            events.len()
        });
        assert_bounded(&format!("{protocol:?} stream"), input.len(), peak, 64);
        assert!(events <= input.len() + 2, "{protocol:?}: {events} events");
        let (_, peak) = measure(|| parse_response(protocol, input));
        assert_bounded(&format!("{protocol:?} body"), input.len(), peak, 64);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn captured_streams_mutated_and_chunked(
        input in mutated(fixtures("protocols")),
        cuts in cuts(),
    ) {
        decode_everywhere(&input, &cuts);
    }

    #[test]
    fn generated_sse_and_ndjson_streams(input in framed_stream(), cuts in cuts()) {
        decode_everywhere(&input, &cuts);
    }

    #[test]
    fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..4096), cuts in cuts()) {
        decode_everywhere(&input, &cuts);
    }
}
