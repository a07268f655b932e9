//! The Kubiya platform's event stream, mutated and generated.

use kubiya_actors::workflow::run::kubiya_stream::decode_platform_stream;
use proptest::prelude::*;

use crate::allocation::{assert_bounded, measure};
use crate::inputs::{config, framed_stream, mutated};

/// A run as the platform streams it, in every record shape it uses.
const PLATFORM_STREAM: &str = concat!(
    ": heartbeat\n\n",
    "retry: 3000\n\n",
    "data: {\"type\":\"workflow_start\",\"requestId\":\"r1\",\"progress\":{\"completed\":0,\"total\":2}}\n\n",
    "data: {\"type\":\"step_running\",\"step\":{\"name\":\"build\",\"status\":\"running\",\"logs\":[]}}\n\n",
    "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"build\",\"status\":\"finished\",\"output\":\"built\\n\",\"exitCode\":0,\"duration\":\"1m2.5s\"}}\n\n",
    "data: 2:{\"type\":\"step_running\",\"step\":{\"name\":\"test\"}}\n\n",
    "data: {\"type\":\"step_failed\",\"step\":{\"name\":\"test\",\"error\":\"exit status 1\",\"canRetry\":true}}\n\n",
    "event: end\ndata: {}\n\n",
    "data: d:{\"finishReason\":\"stop\"}\n\n",
    "data: {\"type\":\"workflow_complete\",\"requestId\":\"r1\",\"status\":\"failed\",\"success\":false}\n\n",
    "data: [DONE]\n\n",
);

fn decode(input: &[u8]) {
    let (events, peak) = measure(|| decode_platform_stream(input, 1024));
    assert_bounded("platform stream", input.len(), peak, 64);
    assert!(events.len() <= input.len() + 1);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn platform_streams_mutated(input in mutated(vec![PLATFORM_STREAM.as_bytes().to_vec()])) {
        decode(&input);
    }

    #[test]
    fn platform_streams_generated(input in framed_stream()) {
        decode(&input);
    }
}
