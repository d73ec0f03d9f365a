//! Parses byte sizes such as `"512MiB"`, `"1GiB"`, `"64MB"`.

/// Parses `<number><unit>` with units B, KB/KiB, MB/MiB, GB/GiB (decimal and binary).
pub fn parse(text: &str) -> Result<u64, &'static str> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or("missing unit")?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().map_err(|_| "not a number")?;
    let mult: f64 = match unit.trim() {
        "B" => 1.0,
        "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err("unknown unit (use B, KiB, MiB or GiB)"),
    };
    let bytes = value * mult;
    if bytes < 1.0 {
        return Err("must be positive");
    }
    if bytes > 2f64.powi(48) {
        return Err("too large");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse("64MB"), Ok(64_000_000));
        assert_eq!(parse("12"), Err("missing unit"));
        assert_eq!(parse("1TB"), Err("unknown unit (use B, KiB, MiB or GiB)"));
    }
}
