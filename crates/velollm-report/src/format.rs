//! Numbers as every report writes them: a precision suited to the size, and units.
//!
//! Bytes are written in decimal units (1 kB = 10³ bytes, 1 MB = 10⁶, 1 GB = 10⁹), like `nvidia-smi`'s
//! vendors and disk makers, not in binary KiB/MiB/GiB.

use velollm_core::measure::names::Unit;

/// A value with a precision suited to its size: `1234`, `123.4`, `12.34` (never `-0.00`).
pub fn num(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    no_minus_zero(s)
}

/// A value with its unit: `123.4 ms`, `99.5%` (fractions are shown as percentages), `42.10`; `–` when it is
/// not a number.
pub fn value(v: f64, unit: Unit) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    match unit {
        Unit::Ms => format!("{} ms", num(v)),
        Unit::Percent => format!("{v:.1}%"),
        Unit::Fraction => format!("{:.1}%", v * 100.0),
        Unit::Plain => num(v),
    }
}

/// A whole count (tokens, requests): `240`, `1234` (`–` when it is not a number).
pub fn count(v: f64) -> String {
    if v.is_finite() { no_minus_zero(format!("{:.0}", v)) } else { "–".into() }
}

/// The unit bytes of magnitude `abs` are written in: its size in bytes and its name. Below 1 MB: kB; below
/// 10 GB: MB; above: GB.
pub fn byte_unit(abs: f64) -> (f64, &'static str) {
    if abs < 1e6 {
        (1e3, "kB")
    } else if abs < 1e10 {
        (1e6, "MB")
    } else {
        (1e9, "GB")
    }
}

/// An amount of memory with one decimal in the unit of [`byte_unit`]: `412.3 MB`, `85.9 GB`, `12.0 kB`.
pub fn bytes(b: u64) -> String {
    bytes_f64(b as f64)
}

/// [`bytes`] of a possibly fractional or negative amount (a slope), `–` when it is not a number.
pub fn bytes_f64(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let (size, unit) = byte_unit(v.abs());
    format!("{} {unit}", no_minus_zero(format!("{:.1}", v / size)))
}

/// A change of memory with its sign: `+12.3 MB`, `-3.0 MB`, `+0.0 kB`.
pub fn signed_bytes(v: f64) -> String {
    let s = bytes_f64(v);
    if s.starts_with('-') || !v.is_finite() { s } else { format!("+{s}") }
}

/// A duration given in milliseconds: `262.0 ms` below one second, `1.84 s` from one second on.
pub fn duration_ms(ms: f64) -> String {
    if ms.is_finite() && ms.abs() >= 1000.0 { format!("{} s", num(ms / 1000.0)) } else { value(ms, Unit::Ms) }
}

/// A time on a run's clock, or a gap, in seconds with one decimal: `12.4 s`.
pub fn seconds(s: f64) -> String {
    if s.is_finite() { format!("{} s", no_minus_zero(format!("{s:.1}"))) } else { "–".into() }
}

/// `-0`, `-0.0`, … without the sign.
fn no_minus_zero(s: String) -> String {
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() { s[1..].to_string() } else { s }
}

/// An amount of money with a precision suited to small amounts (`$0.003600`, `$1.25`, `€120`).
pub fn money(v: f64, currency: &str) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    let digits = if a >= 100.0 {
        0
    } else if a >= 1.0 {
        2
    } else if a >= 0.01 {
        4
    } else {
        6
    };
    match currency {
        "USD" => format!("{sign}${a:.digits$}"),
        "EUR" => format!("{sign}€{a:.digits$}"),
        c => format!("{sign}{a:.digits$} {c}"),
    }
}

/// A hedging proxy's race in one line, as its answers' headers said: answers raced, later branches that won,
/// the extra requests and the prompt tokens they carried.
pub fn hedge_line(h: &velollm_core::measure::proxy_hedge::ProxyHedgeStats) -> String {
    let tokens = match (h.extra_prompt_tokens, h.unknown_prompt) {
        (Some(t), 0) => format!(" carrying {t} prompt tokens"),
        (Some(t), u) => format!(" carrying {t} prompt tokens (and {u} answers without usage)"),
        (None, _) if h.extra_requests > 0 => " (prompt tokens unknown: no usage)".to_string(),
        (None, _) => String::new(),
    };
    format!(
        "proxy hedging (as its header says): {} of {} answers raced, {} won by a later branch · {} extra requests{tokens}",
        h.hedged, h.answers, h.later_wins, h.extra_requests
    )
}

/// A step's cost in one line: per request, total, and the cache's saving when there is one.
pub fn cost_line(c: &velollm_core::measure::cost::StepCost) -> String {
    let mut l = format!(
        "cost: {} per request · {} for {} requests",
        money(c.per_request, &c.currency),
        money(c.total, &c.currency),
        c.priced_requests
    );
    if c.tokens.cache_read + c.tokens.cache_write > 0 {
        l.push_str(&format!(
            " · without the cache {} ({:+.1} %)",
            money(c.without_cache, &c.currency),
            -c.cache_saving * 100.0
        ));
    }
    if c.unpriced_requests > 0 {
        l.push_str(&format!(" · {} unpriced (failed or no token counts)", c.unpriced_requests));
    }
    l
}

/// The ROI of a comparison in one line: E2E saved, cost per request on both sides, and the verdict.
pub fn roi_line(r: &velollm_core::measure::cost::Roi) -> String {
    let saved = if r.latency_saved_ms >= 0.0 {
        format!("{} saved per request", duration_ms(r.latency_saved_ms))
    } else {
        format!("{} lost per request", duration_ms(-r.latency_saved_ms))
    };
    format!(
        "ROI: {saved} (E2E median) · cost per request {} → {} · {}",
        money(r.baseline_per_request, &r.currency),
        money(r.candidate_per_request, &r.currency),
        r.outcome
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_counts_and_durations() {
        assert_eq!(bytes(412_345_678), "412.3 MB");
        assert_eq!(bytes(9_999_000_000), "9999.0 MB");
        assert_eq!(bytes(85_899_345_920), "85.9 GB");
        assert_eq!(bytes(12_000), "12.0 kB");
        assert_eq!(signed_bytes(12_300_000.0), "+12.3 MB");
        assert_eq!(signed_bytes(-3_000_000.0), "-3.0 MB");
        assert_eq!(signed_bytes(-10.0), "+0.0 kB");
        assert_eq!(bytes_f64(f64::NAN), "–");
        assert_eq!(count(239.6), "240");
        assert_eq!(count(-0.2), "0");
        assert_eq!(duration_ms(262.04), "262.0 ms");
        assert_eq!(duration_ms(1840.0), "1.84 s");
        assert_eq!(seconds(12.44), "12.4 s");
        assert_eq!(seconds(-0.01), "0.0 s");
    }

    #[test]
    fn sizes_and_units() {
        assert_eq!(num(-0.001), "0.00");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(value(1234.5, Unit::Ms), "1234 ms");
        assert_eq!(value(0.995, Unit::Fraction), "99.5%");
        assert_eq!(value(f64::NAN, Unit::Ms), "–");
    }
}
