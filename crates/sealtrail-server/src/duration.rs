//! Durations as operators write them in flags and the configuration: `500ms`, `30s`, `5m`,
//! `1h`, `7d` (a bare number is seconds).

use std::time::Duration;

/// A duration as operators write one: a whole number with `ms`, `s`, `m`, `h` or `d`, or a
/// bare number of seconds (`60s`, `5m`, `1h`, `90`). `None` for anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    }
}
