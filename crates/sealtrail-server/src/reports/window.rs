//! A report's window: `[from, to)` by event time, with each report's defaults and bounds.

use sealtrail_core::Timestamp;

use super::{ReportError, ReportName};
use crate::gaps::MAX_WINDOW_DAYS;

const HOUR_MICROS: i64 = 3_600_000_000;
const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// How far back the accounting of disclosures goes by default: 45 CFR 164.528(a) gives an
/// individual the disclosures of the six years before the request.
pub const DISCLOSURE_YEARS: i32 = 6;

/// `[from, to)`, by event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// The window of a report asked with `from` and `to` at `now`: `to` defaults to now, `from`
/// to 24 hours before `to`, or six calendar years for `disclosures`.
pub fn settle(
    name: ReportName,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    now: Timestamp,
) -> Result<Window, ReportError> {
    let to = to.unwrap_or(now);
    let from = match from {
        Some(from) => from,
        None if name == ReportName::Disclosures => years_before(to, DISCLOSURE_YEARS),
        None => Timestamp::from_unix_micros((to.unix_micros() - DAY_MICROS).max(0))
            .expect("between the epoch and to"),
    };
    if from >= to {
        return Err(ReportError::invalid(
            "from",
            "range",
            format!(
                "from: must be before to ({} is not before {})",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ));
    }
    if name == ReportName::Completeness
        && to.unix_micros() - from.unix_micros() > MAX_WINDOW_DAYS * DAY_MICROS
    {
        return Err(ReportError::invalid(
            "from",
            "max_range",
            format!(
                "from: the completeness report covers at most {MAX_WINDOW_DAYS} days (per hour and producer); ask for a shorter window"
            ),
        ));
    }
    Ok(Window { from, to })
}

/// The same instant `years` calendar years earlier (29 February becomes 28 February), or the
/// epoch when that is before it.
pub fn years_before(at: Timestamp, years: i32) -> Timestamp {
    let text = at.to_rfc3339();
    let year: i32 = text[..4].parse().expect("a canonical timestamp");
    let earlier = year - years;
    if earlier < 1970 {
        return Timestamp::from_unix_micros(0).expect("the epoch");
    }
    let mut shifted = format!("{earlier:04}{}", &text[4..]);
    if &shifted[4..10] == "-02-29" {
        shifted.replace_range(8..10, "28");
    }
    Timestamp::parse(&shifted).expect("a valid date")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn six_years_back_is_calendar_years() {
        assert_eq!(
            years_before(at("2026-12-04T10:00:00Z"), 6),
            at("2020-12-04T10:00:00Z")
        );
        assert_eq!(
            years_before(at("2028-02-29T00:00:00Z"), 6),
            at("2022-02-28T00:00:00Z")
        );
        assert_eq!(
            years_before(at("1972-01-01T00:00:00Z"), 6),
            at("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn defaults_and_rules() {
        let now = at("2026-12-04T10:00:00Z");
        let w = settle(ReportName::DailyActivity, None, None, now).unwrap();
        assert_eq!((w.from, w.to), (at("2026-12-03T10:00:00Z"), now));
        let w = settle(ReportName::Disclosures, None, None, now).unwrap();
        assert_eq!(w.from, at("2020-12-04T10:00:00Z"));
        let error = settle(ReportName::DailyActivity, Some(now), Some(now), now).unwrap_err();
        assert!(matches!(
            error,
            ReportError::Invalid {
                field: "from",
                rule: "range",
                ..
            }
        ));
        let error = settle(
            ReportName::Completeness,
            Some(at("2026-10-01T00:00:00Z")),
            None,
            now,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            ReportError::Invalid {
                rule: "max_range",
                ..
            }
        ));
    }
}
