//! Numbers as every report writes them: a precision suited to the size, and units.

use velollm_core::names::Unit;

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
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() { s[1..].to_string() } else { s }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_units() {
        assert_eq!(num(-0.001), "0.00");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(value(1234.5, Unit::Ms), "1234 ms");
        assert_eq!(value(0.995, Unit::Fraction), "99.5%");
        assert_eq!(value(f64::NAN, Unit::Ms), "–");
    }
}

/// A byte count for people: MB with one decimal below 10 GB, GB above (decimal units, as `ps`/`top` do not
/// agree on binary ones).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 10e9 { format!("{:.1} GB", b / 1e9) } else { format!("{:.1} MB", b / 1e6) }
}
