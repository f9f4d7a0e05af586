//! The JSON shape of a step result, from deterministic records, as a snapshot: any change to field names
//! or formulas shows up here.

use velollm_core::aggregate::accumulator::StepAccumulator;
use velollm_core::aggregate::step::StepConfig;
use velollm_core::document::result::legacy;
use velollm_core::measure::record::{
    Channel, Chunk, ConnectionInfo, ErrorClass, NativeTimings, RequestError, RequestRecord, Usage,
};
use velollm_core::workload::load::{Bounds, LoadProfile};

const MS: u64 = 1_000_000;

fn record(id: u64, start: u64) -> RequestRecord {
    let t = |ms: u64| (start + ms) * MS;
    RequestRecord {
        id,
        scheduled: t(0),
        sent: Some(t(1)),
        headers: Some(t(5)),
        done: Some(t(61)),
        chunks: vec![
            Chunk { t: t(5), channel: Channel::Role, events: 1, tokens: None, bytes: 0 },
            Chunk { t: t(40), channel: Channel::Content, events: 1, tokens: None, bytes: 5 },
            Chunk { t: t(50), channel: Channel::Content, events: 2, tokens: None, bytes: 8 },
            Chunk { t: t(60), channel: Channel::Content, events: 1, tokens: None, bytes: 4 },
            Chunk { t: t(61), channel: Channel::Usage, events: 2, tokens: None, bytes: 0 },
        ],
        connection: Some(ConnectionInfo {
            id: 1,
            reused: id > 0,
            dns_ns: Some(MS / 10),
            connect_ns: Some(MS / 5),
            tls_ns: None,
            ..Default::default()
        }),
        status: Some(200),
        usage: Some(Usage {
            prompt_tokens: Some(20),
            completion_tokens: Some(4),
            cached_tokens: Some(0),
            cache_write_tokens: None,
            reasoning_tokens: None,
        }),
        native: Some(NativeTimings {
            source: "llama.cpp".into(),
            prompt_ms: Some(30.0),
            predicted_ms: Some(25.0),
            predicted_n: Some(4),
            prompt_n: Some(20),
            ..Default::default()
        }),
        max_tokens: Some(4),
        finish_reason: Some("length".into()),
        ..Default::default()
    }
}

#[test]
fn step_result_json() {
    let config = StepConfig {
        prompt: "hello".into(),
        prompt_tokens: None,
        max_tokens: 4,
        exact_output: false,
        load: LoadProfile::Sequential,
        bounds: Bounds { requests: Some(3), ..Bounds::default() },
        turns: None,
        tags: Default::default(),
    };
    let mut acc = StepAccumulator::new("snap", config);
    acc.push(&record(0, 0));
    acc.push(&record(1, 100));
    acc.push(&RequestRecord {
        id: 2,
        scheduled: 200 * MS,
        sent: Some(201 * MS),
        done: Some(202 * MS),
        error: Some(RequestError { class: ErrorClass::Connect, message: "cannot connect".into(), retry_after_s: None }),
        ..Default::default()
    });
    let step = acc.result(None, false);
    insta::assert_json_snapshot!("step_result", step);
    insta::assert_json_snapshot!("legacy_benchmark", legacy(&step, "smollm2", "2026-11-23T00:00:00Z"));
}
