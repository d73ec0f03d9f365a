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
    if let Some(v) = short_decimal(t) {
        return Cell::Number(v);
    }
    match lexical_core::parse::<f64>(t) {
        Ok(v) if v.is_finite() => Cell::Number(v),
        Ok(v) if v.is_nan() => Cell::Nan,
        Ok(_) => Cell::Inf,
        Err(_) => special(t),
    }
}

/// Exact powers of ten (every one up to 10^22 is an `f64`).
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The common case, fast: an optional sign, at most 15 digits and at most one `.`, no exponent. The digits
/// make an integer below 2^53 and 10^k is exact, so one division rounds correctly (Clinger's fast path).
/// Anything else is `None`, for the full parser.
#[inline]
fn short_decimal(t: &[u8]) -> Option<f64> {
    let (negative, digits) = match t[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa = 0i64;
    let mut dot = usize::MAX;
    for (i, &b) in digits.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            mantissa = mantissa * 10 + i64::from(d);
        } else if b == b'.' && dot == usize::MAX {
            dot = i;
        } else {
            return None;
        }
    }
    let (decimals, count) =
        if dot == usize::MAX { (0, digits.len()) } else { (digits.len() - dot - 1, digits.len() - 1) };
    if count == 0 || count > 15 {
        return None;
    }
    // Below 10^15, so exact as an f64 (and a signed conversion is one instruction).
    let v = mantissa as f64 / POW10[decimals];
    Some(if negative { -v } else { v })
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
        assert_eq!(classify(b"-0"), Cell::Number(-0.0));
        assert!(matches!(classify(b"-0"), Cell::Number(z) if z.is_sign_negative()));
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
    fn the_fast_path_agrees_with_the_standard_parser() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..200_000 {
            let digits = rng.usize(1..18);
            let mut s: String = (0..digits).map(|_| char::from(b'0' + rng.u8(..10))).collect();
            if rng.bool() {
                s.insert(rng.usize(..=s.len()), '.');
            }
            if rng.u8(..3) == 0 {
                s.insert(0, '-');
            }
            let want: Option<f64> = s.parse().ok();
            match classify(s.as_bytes()) {
                Cell::Number(v) => assert_eq!(Some(v), want, "{s}"),
                other => assert!(want.is_none(), "{s}: {other:?}"),
            }
            if let Some(v) = short_decimal(s.as_bytes()) {
                assert_eq!(v.to_bits(), want.unwrap().to_bits(), "{s}");
            }
        }
        for s in [".", "-", "+", "-.", "1.2.3", "..5"] {
            assert_eq!(short_decimal(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn text() {
        for text in ["abc", "1,5", "1e", "e5", "0x10", "1 2", "nana", "infinite", "N/A/B", "12abc", "--1", "é"] {
            assert_eq!(classify(text.as_bytes()), Cell::Text, "{text}");
        }
    }
}
