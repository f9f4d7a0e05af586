//! A newline-delimited JSON splitter (Ollama's streaming format): one message per `\n`-terminated line,
//! `\r\n` tolerated, blank lines skipped. A line longer than the limit is refused (see [`super`]).

use super::{MAX_MESSAGE_BYTES, TooLarge};

/// Incremental decoder state.
#[derive(Debug)]
pub struct NdjsonDecoder {
    pending: Vec<u8>,
    limit: usize,
    /// A line went over the limit: everything after it is refused.
    failed: bool,
}

impl Default for NdjsonDecoder {
    fn default() -> NdjsonDecoder {
        NdjsonDecoder::with_limit(MAX_MESSAGE_BYTES)
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii()
}

impl NdjsonDecoder {
    /// A decoder that refuses lines longer than `limit` bytes (terminator excluded).
    pub fn with_limit(limit: usize) -> NdjsonDecoder {
        NdjsonDecoder { pending: Vec::new(), limit, failed: false }
    }

    /// Feed bytes; call `emit` for every non-blank line they complete. Fails once a line is longer than the
    /// limit, and for every push after that.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) -> Result<(), TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.check(i)?;
            if self.pending.is_empty() {
                let line = trim(&rest[..i]);
                if !line.is_empty() {
                    emit(line);
                }
            } else {
                self.pending.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.pending);
                let t = trim(&line);
                if !t.is_empty() {
                    emit(t);
                }
            }
            rest = &rest[i + 1..];
        }
        self.check(rest.len())?;
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// End of stream: the last line if it had no terminating newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let line = std::mem::take(&mut self.pending);
        let t = trim(&line);
        (!t.is_empty() && !self.failed).then(|| t.to_vec())
    }

    /// Fail when `more` bytes added to the pending line would take it over the limit.
    fn check(&mut self, more: usize) -> Result<(), TooLarge> {
        if self.pending.len().saturating_add(more) > self.limit {
            self.failed = true;
            self.pending = Vec::new();
            return Err(self.too_large());
        }
        Ok(())
    }

    fn too_large(&self) -> TooLarge {
        TooLarge { what: "line", limit: self.limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut d = NdjsonDecoder::default();
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(start, input.len());
            d.push(&input[start..c], |l| out.push(l.to_vec())).unwrap();
            start = c;
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn splits_lines() {
        assert_eq!(lines(b"{\"a\":1}\r\n\n{\"b\":2}", &[3]), vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines(
            objs in prop::collection::vec("[a-z0-9{}\":,]{1,40}", 1..12),
            cuts in prop::collection::vec(0usize..500, 0..30),
        ) {
            let input: String = objs.iter().map(|o| format!("{o}\n")).collect();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let got = lines(input.as_bytes(), &cuts);
            let want: Vec<Vec<u8>> = objs.iter().map(|o| o.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
