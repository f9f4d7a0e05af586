//! A newline-delimited JSON splitter (Ollama's streaming format): one message per `\n`-terminated line,
//! `\r\n` tolerated, blank lines skipped.

/// Incremental decoder state.
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    pending: Vec<u8>,
}

fn trim(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii()
}

impl NdjsonDecoder {
    /// Feed bytes; call `emit` for every non-blank line they complete.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
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
        self.pending.extend_from_slice(rest);
    }

    /// End of stream: the last line if it had no terminating newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let line = std::mem::take(&mut self.pending);
        let t = trim(&line);
        (!t.is_empty()).then(|| t.to_vec())
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
            d.push(&input[start..c], |l| out.push(l.to_vec()));
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
