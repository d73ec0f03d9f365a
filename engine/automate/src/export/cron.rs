//! A workflow's cron expression in the plain five-field form CI systems accept: aliases such as
//! `@daily` spelt out, `?` as `*`, day-of-week 7 as 0. dagrun's extensions that CI cron lacks
//! (`L`, `W`, `#`) cannot be translated and are refused.

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `expr` as five POSIX cron fields separated by single spaces, or why it cannot be.
pub(crate) fn five_fields(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let spelt = match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
        "@monthly" => "0 0 1 * *".to_owned(),
        "@weekly" => "0 0 * * 0".to_owned(),
        "@daily" | "@midnight" => "0 0 * * *".to_owned(),
        "@hourly" => "0 * * * *".to_owned(),
        _ => expr.to_owned(),
    };
    let fields: Vec<&str> = spelt.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("it has {} fields, not 5", fields.len()));
    }
    let mut out = Vec::with_capacity(5);
    for (i, field) in fields.iter().enumerate() {
        let field = field.replace('?', "*").to_ascii_uppercase();
        for token in field.split([',', '-', '/']) {
            let known = token == "*"
                || (!token.is_empty() && token.chars().all(|c| c.is_ascii_digit()))
                || (i == 3 && MONTHS.contains(&token))
                || (i == 4 && DAYS.contains(&token));
            if !known {
                return Err(format!("`{token}` (in `{field}`) is a dagrun extension that CI cron does not have"));
            }
        }
        out.push(if i == 4 { sunday_as_zero(&field)? } else { field });
    }
    Ok(out.join(" "))
}

/// Day-of-week `7` (Sunday, as in `5-7`) written as `0`, which is all CI cron accepts.
fn sunday_as_zero(field: &str) -> Result<String, String> {
    let items: Vec<String> = field
        .split(',')
        .map(|item| match item.split_once('-') {
            _ if item == "7" => Ok("0".to_owned()),
            Some(("7", "7")) => Ok("0".to_owned()),
            Some((from, "7")) => Ok(format!("{from}-6,0")),
            Some((_, to)) if to.starts_with("7/") => {
                Err(format!("`{item}`: write Sunday as 0 (day-of-week 7 with a step has no CI equivalent)"))
            }
            _ => Ok(item.to_owned()),
        })
        .collect::<Result<_, _>>()?;
    Ok(items.join(","))
}

/// Whether a schedule may run more often than every 5 minutes (GitHub's shortest interval).
pub(crate) fn more_often_than_5_minutes(fields: &str) -> bool {
    let minute = fields.split(' ').next().unwrap_or("");
    if minute == "*" {
        return true;
    }
    if let Some(step) = minute.strip_prefix("*/") {
        return step.parse::<u32>().is_ok_and(|s| s < 5);
    }
    let values: Vec<u32> = minute.split(',').filter_map(|m| m.parse().ok()).collect();
    minute.contains('-') || values.windows(2).any(|w| w[1].abs_diff(w[0]) < 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_spelt_out() {
        assert_eq!(five_fields("@daily").unwrap(), "0 0 * * *");
        assert_eq!(five_fields("@Hourly").unwrap(), "0 * * * *");
        assert_eq!(five_fields("@weekly").unwrap(), "0 0 * * 0");
        assert_eq!(five_fields("@annually").unwrap(), "0 0 1 1 *");
        assert_eq!(five_fields("  0   3 * *  1 ").unwrap(), "0 3 * * 1");
    }

    #[test]
    fn names_questions_and_sunday_seven_are_normalised() {
        assert_eq!(five_fields("0 3 ? jan,jul mon-fri").unwrap(), "0 3 * JAN,JUL MON-FRI");
        assert_eq!(five_fields("0 3 * * 7").unwrap(), "0 3 * * 0");
        assert_eq!(five_fields("0 3 * * 5-7").unwrap(), "0 3 * * 5-6,0");
        assert_eq!(five_fields("*/15 1-5 1,15 */2 1").unwrap(), "*/15 1-5 1,15 */2 1");
    }

    #[test]
    fn extensions_are_refused() {
        assert!(five_fields("0 3 L * *").unwrap_err().contains("`L`"));
        assert!(five_fields("0 3 * * 5#2").unwrap_err().contains("`5#2`"));
        assert!(five_fields("0 3 15W * *").is_err());
        assert!(five_fields("0 0 3 * * 1").unwrap_err().contains("6 fields"));
    }

    #[test]
    fn short_intervals_are_noticed() {
        assert!(more_often_than_5_minutes("* * * * *"));
        assert!(more_often_than_5_minutes("*/2 * * * *"));
        assert!(more_often_than_5_minutes("0,3 * * * *"));
        assert!(!more_often_than_5_minutes("*/5 * * * *"));
        assert!(!more_often_than_5_minutes("0 3 * * 1"));
        assert!(!more_often_than_5_minutes("0,30 * * * *"));
    }
}
