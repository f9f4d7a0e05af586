//! Framing decoders: bytes as they arrive → complete protocol messages.
//!
//! Decoders never look at the clock: the engine stamps each HTTP body frame as it arrives, then feeds its
//! bytes here, so every message completed by one frame shares that frame's arrival instant.

pub mod ndjson;
pub mod sse;

/// How a dialect frames its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`data: …` lines, events separated by blank lines).
    Sse,
    /// Newline-delimited JSON (one object per line).
    Ndjson,
}

/// A framing decoder of either kind.
#[derive(Debug)]
pub enum Decoder {
    /// SSE decoder.
    Sse(sse::SseDecoder),
    /// NDJSON decoder.
    Ndjson(ndjson::NdjsonDecoder),
}

impl Decoder {
    /// A fresh decoder for `framing`.
    pub fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Sse => Decoder::Sse(sse::SseDecoder::default()),
            Framing::Ndjson => Decoder::Ndjson(ndjson::NdjsonDecoder::default()),
        }
    }

    /// Feed bytes; append every message they complete (SSE `data` payloads or NDJSON lines) to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        match self {
            Decoder::Sse(d) => d.push(bytes, |e| out.push(e.data)),
            Decoder::Ndjson(d) => d.push(bytes, |l| out.push(l.to_vec())),
        }
    }

    /// End of stream: a last message that was not terminated, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        match self {
            Decoder::Sse(d) => d.finish().map(|e| e.data),
            Decoder::Ndjson(d) => d.finish(),
        }
    }
}
