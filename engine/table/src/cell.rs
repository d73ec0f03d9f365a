//! What one text cell holds: a number, a missing value, NaN, an infinity, or text.

/// The meaning of a (trimmed) text cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    /// Empty, `NA`, `N/A`, `null`, `None` (any case).
    Missing,
    /// `nan`, `NaN` (any case, optionally signed).
    Nan,
    /// `inf`, `-inf`, `Infinity`, `-Infinity` (any case), or a number too large for `f64`.
    Inf,
    /// A finite number.
    Number(f64),
    /// Anything else.
    Text,
}

/// Classifies a cell that has already been trimmed of ASCII whitespace.
#[inline]
pub(crate) fn classify(t: &[u8]) -> Cell {
    if t.is_empty() {
        return Cell::Missing;
    }
    match lexical_core::parse::<f64>(t) {
        Ok(v) if v.is_finite() => Cell::Number(v),
        Ok(v) if v.is_nan() => Cell::Nan,
        Ok(_) => Cell::Inf,
        Err(_) => special(t),
    }
}

/// The missing-value, NaN and infinity spellings the float parser does not take itself.
#[cold]
fn special(t: &[u8]) -> Cell {
    if t.len() > 9 {
        return Cell::Text;
    }
    let mut buf = [0u8; 9];
    let lower = &mut buf[..t.len()];
    lower.copy_from_slice(t);
    lower.make_ascii_lowercase();
    match &*lower {
        b"na" | b"n/a" | b"null" | b"none" => return Cell::Missing,
        _ => {}
    }
    let unsigned = match lower.first() {
        Some(b'+' | b'-') => &lower[1..],
        _ => &*lower,
    };
    match unsigned {
        b"nan" => Cell::Nan,
        b"inf" | b"infinity" => Cell::Inf,
        _ => Cell::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for (text, v) in [("1", 1.0), ("-2.5", -2.5), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), ("+7", 7.0)] {
            assert_eq!(classify(text.as_bytes()), Cell::Number(v), "{text}");
        }
        assert_eq!(classify(b"0.1"), Cell::Number(0.1));
        assert_eq!(classify(b"1e400"), Cell::Inf);
    }

    #[test]
    fn missing_nan_and_infinities() {
        for text in ["", "NA", "na", "N/A", "n/a", "null", "NULL", "None", "none"] {
            assert_eq!(classify(text.as_bytes()), Cell::Missing, "{text}");
        }
        for text in ["nan", "NaN", "NAN", "-nan", "+NaN"] {
            assert_eq!(classify(text.as_bytes()), Cell::Nan, "{text}");
        }
        for text in ["inf", "-inf", "+inf", "Inf", "INF", "Infinity", "-Infinity", "infinity", "-INFINITY"] {
            assert_eq!(classify(text.as_bytes()), Cell::Inf, "{text}");
        }
    }

    #[test]
    fn text() {
        for text in ["abc", "1,5", "1e", "e5", "0x10", "1 2", "nana", "infinite", "N/A/B", "12abc", "--1", "é"] {
            assert_eq!(classify(text.as_bytes()), Cell::Text, "{text}");
        }
    }
}
