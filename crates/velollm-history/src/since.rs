//! `--since`: a duration back from now (`30d`, `2w`, `12h`) or a date or time to start from.

use crate::HistoryError;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, civil::Date};

/// The instant `text` names: a duration back from `now` (`30d`, `2w`, `12h`, `1 month`), a date
/// (`2026-01-31`, midnight UTC) or an RFC 3339 time (`2026-01-31T12:00:00Z`).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, HistoryError> {
    let t = text.trim();
    let bad = || HistoryError::BadSince(text.to_string());
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(d) = t.parse::<Date>() {
        return d.to_zoned(TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| bad());
    }
    let span: Span = t.parse().map_err(|_| bad())?;
    now.to_zoned(TimeZone::UTC).checked_sub(span.abs()).map(|z| z.timestamp()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_dates_and_times() {
        let now: Timestamp = "2026-03-31T12:00:00Z".parse().unwrap();
        let at = |s: &str| parse_since(s, now).unwrap().to_string();
        assert_eq!(at("30d"), "2026-03-01T12:00:00Z");
        assert_eq!(at("2w"), "2026-03-17T12:00:00Z");
        assert_eq!(at("12h"), "2026-03-31T00:00:00Z");
        assert_eq!(at("1 month"), "2026-02-28T12:00:00Z");
        assert_eq!(at("2026-01-01"), "2026-01-01T00:00:00Z");
        assert_eq!(at("2026-01-01T08:30:00+02:00"), "2026-01-01T06:30:00Z");
        for bad in ["", "soon", "30", "2026-13-01"] {
            let e = parse_since(bad, now).unwrap_err().to_string();
            assert!(e.contains("30d") && e.contains("2026-01-31"), "{bad}: {e}");
        }
    }
}
