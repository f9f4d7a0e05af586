//! Framing decoders: bytes as they arrive → complete protocol messages.
//!
//! Decoders never look at the clock: the engine stamps each HTTP body frame as it arrives, then feeds its
//! bytes here, so every message completed by one frame shares that frame's arrival instant.
//!
//! Hostile input: no input makes a decoder panic, and memory stays bounded. A message (SSE line or event
//! data, NDJSON line) longer than the decoder's limit ([`MAX_MESSAGE_BYTES`] by default) is refused with
//! [`TooLarge`] instead of being buffered without bound; the decoder then refuses everything after it. The
//! same events come out, and the same limit is hit, however the input is split into pushes.

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

/// The largest stream message accepted by default: 64 MiB. A generated token is a few bytes and the largest
/// real events (a whole non-streamed answer, a tool call's arguments) are far below this.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A stream message longer than the decoder's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} larger than {} (the most velollm buffers for one stream message)", size(*limit))]
pub struct TooLarge {
    /// `event` (SSE) or `line` (NDJSON).
    pub what: &'static str,
    /// The limit, in bytes.
    pub limit: usize,
}

/// `64 MiB`, `1 KiB`, or `100 bytes`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
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
    /// A fresh decoder for `framing`, with the default limit ([`MAX_MESSAGE_BYTES`]).
    pub fn new(framing: Framing) -> Decoder {
        Decoder::with_limit(framing, MAX_MESSAGE_BYTES)
    }

    /// A fresh decoder for `framing` that refuses messages longer than `limit` bytes.
    pub fn with_limit(framing: Framing, limit: usize) -> Decoder {
        match framing {
            Framing::Sse => Decoder::Sse(sse::SseDecoder::with_limit(limit)),
            Framing::Ndjson => Decoder::Ndjson(ndjson::NdjsonDecoder::with_limit(limit)),
        }
    }

    /// Feed bytes; append every message they complete (SSE `data` payloads or NDJSON lines) to `out`. Fails
    /// when a message grows beyond the limit (the messages completed before it are in `out`).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), TooLarge> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` pushed in the pieces `cuts` delimits: the messages, then the error if any.
    fn decode(framing: Framing, limit: usize, input: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Option<TooLarge>) {
        let mut d = Decoder::with_limit(framing, limit);
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            if let Err(e) = d.push(&input[start..c], &mut out) {
                return (out, Some(e));
            }
            start = c;
        }
        out.extend(d.finish());
        (out, None)
    }

    const SSE: &[u8] = b": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n\
                         data:z\r\rid: 7\nretry: 10\ndata: {\"t\":\"\xc3\xa9\"}\n\ndata: [DONE]";
    const NDJSON: &[u8] = b"{\"a\":1}\r\n\n  {\"b\":\"\xc3\xa9\"}\n\r\n{\"done\":true}";

    #[test]
    fn every_split_point_of_a_multi_event_buffer_gives_the_same_messages() {
        for (framing, input, want) in [(Framing::Sse, SSE, 5), (Framing::Ndjson, NDJSON, 3)] {
            let whole = decode(framing, MAX_MESSAGE_BYTES, input, &[]);
            assert_eq!((whole.0.len(), whole.1), (want, None), "{framing:?}: {whole:?}");
            for i in 0..=input.len() {
                assert_eq!(decode(framing, MAX_MESSAGE_BYTES, input, &[i]), whole, "{framing:?} split at {i}");
                for j in i..=input.len() {
                    assert_eq!(decode(framing, MAX_MESSAGE_BYTES, input, &[i, j]), whole, "{framing:?} at {i}, {j}");
                }
            }
            let every: Vec<usize> = (1..input.len()).collect();
            assert_eq!(decode(framing, MAX_MESSAGE_BYTES, input, &every), whole, "{framing:?}: byte by byte");
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_wherever_the_input_is_split() {
        let big = [b"data: 12345\n\ndata: ".as_slice(), &[b'x'; 40], b"\n\ndata: after\n\n"].concat();
        let lines = [b"12345\n".as_slice(), &[b'x'; 40], b"\nafter\n"].concat();
        for (framing, input, what) in [(Framing::Sse, &big, "event"), (Framing::Ndjson, &lines, "line")] {
            let whole = decode(framing, 32, input, &[]);
            assert_eq!(whole.0, vec![b"12345".to_vec()], "{framing:?}: what came before is kept");
            assert_eq!(whole.1, Some(TooLarge { what, limit: 32 }));
            for i in 0..=input.len() {
                assert_eq!(decode(framing, 32, input, &[i]), whole, "{framing:?} split at {i}");
            }
            let every: Vec<usize> = (1..input.len()).collect();
            assert_eq!(decode(framing, 32, input, &every), whole, "{framing:?}: byte by byte");
            // The same input fits a larger limit.
            assert_eq!(decode(framing, 64, input, &[]).0.len(), 3);
        }
        // Several data lines of one event count together.
        let joined = b"data: 0123456789a\ndata: 0123456789a\ndata: 0123456789a\n\n";
        assert!(decode(Framing::Sse, 32, joined, &[]).1.is_some());
        assert!(decode(Framing::Sse, 32, &joined[..36], &[]).1.is_none());
        assert_eq!(
            TooLarge { what: "event", limit: MAX_MESSAGE_BYTES }.to_string(),
            "event larger than 64 MiB (the most velollm buffers for one stream message)"
        );
    }
}
