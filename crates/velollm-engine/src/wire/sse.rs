//! A server-sent events decoder (WHATWG HTML § 9.2), incremental and split-agnostic.
//!
//! Lines end with `\n`, `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a blank line
//! dispatches the event; comment lines (`:`) and unknown fields are ignored; events without data are not
//! dispatched. A line or an event's data longer than the limit is refused (see [`super`]).

use super::{MAX_MESSAGE_BYTES, TooLarge};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The data lines joined with `\n`.
    pub data: Vec<u8>,
}

/// Incremental decoder state.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    skip_lf: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    limit: usize,
    /// A line or an event went over the limit: everything after it is refused.
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> SseDecoder {
        SseDecoder::with_limit(MAX_MESSAGE_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that refuses lines, and events whose data, longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> SseDecoder {
        SseDecoder {
            line: Vec::new(),
            skip_lf: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            limit,
            failed: false,
        }
    }

    /// Feed bytes; call `emit` for every event they complete. Fails once a line or an event's data is longer
    /// than the limit, and for every push after that.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(SseEvent)) -> Result<(), TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            let end = memchr::memchr2(b'\n', b'\r', rest);
            let take = end.unwrap_or(rest.len());
            if self.line.len().saturating_add(take) > self.limit {
                return Err(self.fail());
            }
            self.line.extend_from_slice(&rest[..take]);
            match end {
                Some(i) => {
                    self.skip_lf = rest[i] == b'\r';
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    let done = self.line_done(&line, &mut emit);
                    self.line = line;
                    self.line.clear();
                    done?;
                }
                None => rest = &[],
            }
        }
        Ok(())
    }

    /// End of stream: dispatch a pending event that lacked its final blank line (lenient with servers that
    /// close right after the last `data:` line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.field(&line).ok()?;
        }
        self.take_event()
    }

    fn line_done(&mut self, line: &[u8], emit: &mut impl FnMut(SseEvent)) -> Result<(), TooLarge> {
        if line.is_empty() {
            if let Some(e) = self.take_event() {
                emit(e);
            }
            Ok(())
        } else {
            self.field(line)
        }
    }

    fn field(&mut self, line: &[u8]) -> Result<(), TooLarge> {
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let joined = self.data.len() + usize::from(self.has_data) + value.len();
                if joined > self.limit {
                    return Err(self.fail());
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(())
    }

    /// Go over the limit: drop what is buffered and refuse everything from now on.
    fn fail(&mut self) -> TooLarge {
        self.failed = true;
        (self.line, self.data, self.event) = (Vec::new(), Vec::new(), None);
        self.too_large()
    }

    fn too_large(&self) -> TooLarge {
        TooLarge { what: "event", limit: self.limit }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(start, input.len());
            d.push(&input[start..c], |e| out.push(e)).unwrap();
            start = c;
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn parses_fields_and_line_endings() {
        let input =
            b": comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\ndata:z\r\rid: 3\n\n";
        let events = decode_in_pieces(input, &[]);
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("message_start".into()), data: b"{\"a\":1}".to_vec() },
                SseEvent { event: None, data: b"x\ny".to_vec() },
                SseEvent { event: None, data: b"z".to_vec() },
            ]
        );
    }

    #[test]
    fn unterminated_last_event_is_flushed() {
        assert_eq!(decode_in_pieces(b"data: [DONE]", &[]), vec![SseEvent { event: None, data: b"[DONE]".to_vec() }]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(
            payloads in prop::collection::vec("[a-zA-Z0-9{}\":, ]{0,40}", 1..12),
            crlf: bool,
            cuts in prop::collection::vec(0usize..600, 0..30),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let input: String = payloads.iter().map(|p| format!("data: {p}{nl}{nl}")).collect();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let whole = decode_in_pieces(input.as_bytes(), &[]);
            let split = decode_in_pieces(input.as_bytes(), &cuts);
            prop_assert_eq!(&whole, &split);
            let datas: Vec<Vec<u8>> = whole.into_iter().map(|e| e.data).collect();
            let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.as_bytes().to_vec()).collect();
            prop_assert_eq!(datas, want);
        }

        #[test]
        fn every_byte_split_matches(payloads in prop::collection::vec("[ -~]{0,30}", 1..5)) {
            let input: String = payloads.iter().map(|p| format!("data: {p}\r\n\r\n")).collect();
            let cuts: Vec<usize> = (1..input.len()).collect();
            prop_assert_eq!(decode_in_pieces(input.as_bytes(), &[]), decode_in_pieces(input.as_bytes(), &cuts));
        }
    }
}
