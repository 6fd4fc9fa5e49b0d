//! UTC timestamps with microsecond precision, the one time format sealtrail writes.
//!
//! Producers may send any RFC 3339 timestamp (any offset, any number of fractional digits);
//! it is normalised to UTC and truncated to whole microseconds, and always written back as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (exactly six fractional digits), so that one instant has one
//! canonical spelling and canonical entries stay byte-stable.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant in UTC, as whole microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not a timestamp sealtrail accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("must be an RFC 3339 timestamp such as 2026-11-23T10:00:00.123456Z")]
    Syntax,
    #[error("must be between years 1970 and 9999")]
    OutOfRange,
}

/// The earliest instant accepted: the Unix epoch. Audit events from before 1970 are not real.
const MIN_MICROS: i64 = 0;
/// The last microsecond of year 9999, the largest year RFC 3339 can spell.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

impl Timestamp {
    pub fn from_unix_micros(micros: i64) -> Result<Timestamp, TimestampError> {
        if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
            return Err(TimestampError::OutOfRange);
        }
        Ok(Timestamp(micros))
    }

    pub fn unix_micros(&self) -> i64 {
        self.0
    }

    /// Parses any RFC 3339 timestamp, normalising it to UTC and truncating below a microsecond.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampError::Syntax)?;
        let nanos = parsed.unix_timestamp_nanos();
        let micros =
            i64::try_from(nanos.div_euclid(1_000)).map_err(|_| TimestampError::OutOfRange)?;
        Timestamp::from_unix_micros(micros)
    }

    /// The canonical form: UTC, exactly six fractional digits, `Z`.
    pub fn to_rfc3339(&self) -> String {
        let datetime = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .expect("timestamps are range-checked on construction")
            .to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            datetime.year(),
            u8::from(datetime.month()),
            datetime.day(),
            datetime.hour(),
            datetime.minute(),
            datetime.second(),
            datetime.microsecond()
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_offsets_and_precision() {
        let cases = [
            ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00.000000Z"),
            (
                "2026-11-23T10:00:00.123456789Z",
                "2026-11-23T10:00:00.123456Z",
            ),
            ("2026-11-23T11:30:00.5+01:30", "2026-11-23T10:00:00.500000Z"),
            ("2026-11-23t10:00:00z", "2026-11-23T10:00:00.000000Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
            // RFC 3339 §5.6 lets a space stand for the T.
            ("2026-11-23 10:00:00Z", "2026-11-23T10:00:00.000000Z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_rfc3339(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_syntax_and_range() {
        for bad in ["", "2026-11-23", "2026-13-01T00:00:00Z", "yesterday"] {
            assert_eq!(Timestamp::parse(bad), Err(TimestampError::Syntax), "{bad}");
        }
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            Timestamp::from_unix_micros(MAX_MICROS + 1),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn round_trips_through_text() {
        let t = Timestamp::from_unix_micros(1_795_000_000_123_456).unwrap();
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
    }
}
