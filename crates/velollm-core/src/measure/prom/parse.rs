//! A tolerant parser of the Prometheus text exposition format.
//!
//! Accepts format 0.0.4 and the parts of OpenMetrics 1.0 that servers actually send: `# HELP`, `# TYPE`,
//! `# UNIT` and `# EOF` lines, `_created` samples, timestamps and exemplars (both ignored), `NaN`, `+Inf` and
//! `-Inf`, escaped quotes, backslashes and newlines in label values. A malformed line is skipped and counted,
//! never fatal; the work is linear in the size of the input and no input makes it panic.

use std::collections::BTreeMap;

/// The type a `# TYPE` line declares for a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A monotonically increasing counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A histogram: `_bucket`, `_sum` and `_count` samples.
    Histogram,
    /// A summary: quantile samples plus `_sum` and `_count`.
    Summary,
    /// OpenMetrics gauge histogram (`_gcount`, `_gsum`, `_bucket`).
    GaugeHistogram,
    /// OpenMetrics info (an `_info` sample valued 1).
    Info,
    /// OpenMetrics state set.
    StateSet,
    /// `untyped` (0.0.4) or `unknown` (OpenMetrics), or a type word this parser does not know.
    Untyped,
}

impl MetricType {
    fn from_word(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => MetricType::Untyped,
        }
    }
}

/// One sample line: a metric name, its label set and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (`vllm:prompt_tokens_total`, `..._bucket`, `..._sum`).
    pub name: String,
    /// The labels, in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (may be `NaN` or infinite).
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Everything parsed from one scrape of a `/metrics` endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// The samples, in the order they appeared.
    pub samples: Vec<Sample>,
    /// Declared family types, by the name on the `# TYPE` line.
    pub types: BTreeMap<String, MetricType>,
    /// `# HELP` texts, by family name (unescaped).
    pub help: BTreeMap<String, String>,
    /// How many non-empty lines could not be parsed and were skipped.
    pub malformed_lines: u32,
}

/// Suffixes a sample name may carry beyond its family name.
const FAMILY_SUFFIXES: [&str; 8] = ["_total", "_bucket", "_sum", "_count", "_created", "_info", "_gcount", "_gsum"];

impl Scrape {
    /// The samples named exactly `name`.
    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Whether any sample is named exactly `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The declared type of the family a sample belongs to: the sample's own name if a `# TYPE` line names it,
    /// else the name without a `_total`/`_bucket`/`_sum`/`_count`/`_created`/… suffix.
    pub fn type_of(&self, sample_name: &str) -> Option<MetricType> {
        if let Some(t) = self.types.get(sample_name) {
            return Some(*t);
        }
        FAMILY_SUFFIXES.iter().find_map(|suffix| self.types.get(sample_name.strip_suffix(suffix)?).copied())
    }
}

/// Why a metrics body could not be used at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    /// A non-empty body from which not a single line parsed (an HTML page, a JSON error…).
    #[error(
        "the metrics endpoint did not answer with Prometheus text (it begins with '{start}'): point --metrics-url \
         at the server's Prometheus endpoint (usually http://HOST:PORT/metrics); llama-server exposes it only when \
         started with --metrics, SGLang with --enable-metrics"
    )]
    NotPrometheus {
        /// The first characters of the body, for the message.
        start: String,
    },
}

/// Parse a Prometheus (0.0.4) or OpenMetrics text body.
///
/// Malformed lines are skipped and counted in [`Scrape::malformed_lines`]. The only error is a non-empty body
/// of which nothing at all parses ([`PromError::NotPrometheus`]); an empty body is an empty scrape.
pub fn parse(text: &str) -> Result<Scrape, PromError> {
    let mut scrape = Scrape::default();
    let mut understood = 0usize;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            match parse_comment(comment.trim_start(), &mut scrape) {
                Comment::Eof => break,
                Comment::Directive => understood += 1,
                Comment::Other => {}
            }
            continue;
        }
        match parse_sample(line) {
            Some(sample) => {
                scrape.samples.push(sample);
                understood += 1;
            }
            None => scrape.malformed_lines = scrape.malformed_lines.saturating_add(1),
        }
    }
    if understood == 0 && scrape.malformed_lines > 0 {
        let start: String = text.trim_start().chars().take(40).collect();
        return Err(PromError::NotPrometheus { start: start.replace(['\n', '\r'], " ") });
    }
    Ok(scrape)
}

enum Comment {
    /// A `# HELP`, `# TYPE` or `# UNIT` line that parsed.
    Directive,
    /// `# EOF`: the end of an OpenMetrics exposition.
    Eof,
    /// Any other comment (ignored).
    Other,
}

fn parse_comment(body: &str, scrape: &mut Scrape) -> Comment {
    let (keyword, rest) = split_word(body);
    match keyword {
        "EOF" if rest.is_empty() => Comment::Eof,
        "TYPE" => {
            let (name, rest) = split_word(rest);
            let (word, _) = split_word(rest);
            if !is_metric_name(name) || word.is_empty() {
                return Comment::Other;
            }
            scrape.types.insert(name.to_string(), MetricType::from_word(word));
            Comment::Directive
        }
        "HELP" => {
            let (name, rest) = split_word(rest);
            if !is_metric_name(name) {
                return Comment::Other;
            }
            scrape.help.insert(name.to_string(), unescape_help(rest));
            Comment::Directive
        }
        "UNIT" if is_metric_name(split_word(rest).0) => Comment::Directive,
        _ => Comment::Other,
    }
}

/// Split off the first whitespace-delimited word; the rest is left-trimmed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// HELP text escapes: `\\` and `\n` (and, in OpenMetrics, `\"`).
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `name{labels} value [timestamp] [# exemplar]`; `None` when the line is malformed.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    // The value must be separated from the name or the label set by whitespace.
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let (value_word, rest) = split_word(rest);
    let value = parse_value(value_word)?;
    let (timestamp, rest) = split_word(rest);
    if !timestamp.is_empty() && !timestamp.starts_with('#') {
        parse_value(timestamp)?;
        // After a timestamp only an exemplar may follow.
        if !rest.is_empty() && !rest.starts_with('#') {
            return None;
        }
    }
    Some(Sample { name: name.to_string(), labels, value })
}

/// Parse `key="value",...}`; returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some(after);
        }
        let key_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
        let key = &s[..key_end];
        if key.is_empty() || !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        s = s[key_end..].trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
        let (value, after) = parse_quoted(s)?;
        labels.push((key.to_string(), value));
        s = after.trim_start();
        if let Some(after_comma) = s.strip_prefix(',') {
            s = after_comma;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

/// Read an escaped label value up to its closing quote; returns it and what follows the quote.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            _ => out.push(c),
        }
    }
    None
}

/// A sample value or timestamp: a float, `NaN`, `+Inf`/`Inf`/`-Inf` (any case).
fn parse_value(word: &str) -> Option<f64> {
    match word.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        w if w.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '+' || c == '-') => w.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(line: &str) -> Sample {
        let scrape = parse(line).unwrap();
        assert_eq!(scrape.malformed_lines, 0, "{line}");
        assert_eq!(scrape.samples.len(), 1, "{line}");
        scrape.samples[0].clone()
    }

    #[test]
    fn plain_sample() {
        let s = one("llamacpp:prompt_tokens_total 33");
        assert_eq!(s.name, "llamacpp:prompt_tokens_total");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 33.0);
    }

    #[test]
    fn labels_with_escapes() {
        let s = one(r#"m{a="x\"y",b="back\\slash",c="new\nline",d="",} 1.5e3"#);
        assert_eq!(s.label("a"), Some("x\"y"));
        assert_eq!(s.label("b"), Some("back\\slash"));
        assert_eq!(s.label("c"), Some("new\nline"));
        assert_eq!(s.label("d"), Some(""));
        assert_eq!(s.value, 1500.0);
    }

    #[test]
    fn label_value_with_braces_commas_and_unicode() {
        let s = one(r#"m{model_name="a,b}c=d ✓"} 2"#);
        assert_eq!(s.label("model_name"), Some("a,b}c=d ✓"));
    }

    #[test]
    fn special_values() {
        assert!(one("m NaN").value.is_nan());
        assert_eq!(one("m +Inf").value, f64::INFINITY);
        assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one(r#"m_bucket{le="+Inf"} 7"#).label("le"), Some("+Inf"));
    }

    #[test]
    fn timestamps_and_exemplars_are_ignored() {
        assert_eq!(one("m 3 1712345678901").value, 3.0);
        assert_eq!(one("m_total 4 1712345678.5").value, 4.0);
        let s = one(r#"m_bucket{le="0.5"} 9 # {trace_id="abc"} 0.3 1712345678.1"#);
        assert_eq!(s.value, 9.0);
        assert_eq!(one(r#"m_total 5 # {trace_id="x"} 1"#).value, 5.0);
    }

    #[test]
    fn type_help_and_family_lookup() {
        let text = "# HELP x_total Tokens\\nprocessed \\\\ total\n# TYPE x_total counter\nx_total 1\n\
                    # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0.5\nh_count 1\n\
                    # TYPE c counter\nc_total 2\nc_created 1.7e9\n";
        let scrape = parse(text).unwrap();
        assert_eq!(scrape.help["x_total"], "Tokens\nprocessed \\ total");
        assert_eq!(scrape.type_of("x_total"), Some(MetricType::Counter));
        assert_eq!(scrape.type_of("h_sum"), Some(MetricType::Histogram));
        assert_eq!(scrape.type_of("h_bucket"), Some(MetricType::Histogram));
        assert_eq!(scrape.type_of("c_total"), Some(MetricType::Counter));
        assert_eq!(scrape.type_of("c_created"), Some(MetricType::Counter));
        assert_eq!(scrape.type_of("nope"), None);
        assert_eq!(scrape.samples.len(), 6);
    }

    #[test]
    fn openmetrics_eof_stops_parsing() {
        let scrape = parse("# TYPE a counter\na_total 1\n# EOF\ngarbage after eof\n").unwrap();
        assert_eq!(scrape.samples.len(), 1);
        assert_eq!(scrape.malformed_lines, 0);
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let text = "ok 1\n\
                    no_value\n\
                    bad{label=\"unterminated} 1\n\
                    bad2{=\"x\"} 1\n\
                    bad3{a=x} 1\n\
                    9starts_with_digit 1\n\
                    glued{a=\"b\"}1\n\
                    bad_value abc\n\
                    trailing 1 2 3\n\
                    also_ok{a=\"b\"} 2\n";
        let scrape = parse(text).unwrap();
        assert_eq!(scrape.samples.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["ok", "also_ok"]);
        assert_eq!(scrape.malformed_lines, 8);
    }

    #[test]
    fn empty_and_comment_only_bodies_are_empty_scrapes() {
        assert_eq!(parse("").unwrap(), Scrape::default());
        assert_eq!(parse("\n  \n").unwrap(), Scrape::default());
        assert!(parse("# just a comment\n").unwrap().samples.is_empty());
    }

    #[test]
    fn html_is_rejected_with_the_fix() {
        let err = parse("<!DOCTYPE html>\n<html><body>Not found</body></html>\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("<!DOCTYPE html>"), "{msg}");
        assert!(msg.contains("--metrics-url"), "{msg}");
        assert!(msg.contains("--metrics"), "{msg}");
        // llama-server's JSON answer when started without --metrics.
        assert!(parse(r#"{"error":{"code":501,"message":"This server does not support metrics endpoint."}}"#).is_err());
    }

    #[test]
    fn crlf_line_endings() {
        let scrape = parse("# TYPE a gauge\r\na 1\r\nb{x=\"y\"} 2\r\n").unwrap();
        assert_eq!(scrape.samples.len(), 2);
        assert_eq!(scrape.malformed_lines, 0);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn prometheus_like_text_never_panics(text in "[a-z_:{}=\",# \\\\\n0-9.+eEINaf-]{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn label_values_round_trip(value in "\\PC{0,40}", number in -1e12f64..1e12) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("m{{k=\"{escaped}\"}} {number}");
            let scrape = parse(&line).unwrap();
            prop_assert_eq!(scrape.samples.len(), 1);
            prop_assert_eq!(scrape.samples[0].label("k"), Some(value.as_str()));
            prop_assert_eq!(scrape.samples[0].value, number);
        }
    }
}
