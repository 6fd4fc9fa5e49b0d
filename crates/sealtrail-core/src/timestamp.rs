//! UTC timestamps with microsecond precision, the one time format sealtrail writes.
//!
//! Producers may send any RFC 3339 timestamp (any offset, any number of fractional digits);
//! it is normalised to UTC and truncated to whole microseconds, and always written back as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (exactly six fractional digits), so that one instant has one
//! canonical spelling and canonical entries stay byte-stable.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
        let text = self.rfc3339_bytes();
        std::str::from_utf8(&text)
            .expect("the form is ASCII")
            .to_owned()
    }

    /// [`Timestamp::to_rfc3339`]'s text as bytes, without allocating: written digit by digit
    /// rather than through `format!` (it is on every entry's and every receipt's path; a test
    /// holds it to the `time` crate's reading of the same instant over the whole range).
    pub fn rfc3339_bytes(&self) -> [u8; 27] {
        let micros = self.0;
        let seconds = micros.div_euclid(1_000_000);
        let fraction = micros.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let second_of_day = seconds.rem_euclid(86_400);
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |end: usize, mut value: i64, width: usize| {
            for i in (end + 1 - width..=end).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(3, year, 4);
        put(6, i64::from(month), 2);
        put(9, i64::from(day), 2);
        put(12, second_of_day / 3600, 2);
        put(15, second_of_day / 60 % 60, 2);
        put(18, second_of_day % 60, 2);
        put(25, fraction, 6);
        text
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    /// The form through the `time` crate, as [`Timestamp::to_rfc3339`] once wrote it.
    fn reference(timestamp: Timestamp) -> String {
        let datetime =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp.0) * 1_000).unwrap();
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

    #[test]
    fn is_written_as_the_time_crate_reads_the_instant() {
        let check = |micros: i64| {
            let timestamp = Timestamp::from_unix_micros(micros).unwrap();
            assert_eq!(timestamp.to_rfc3339(), reference(timestamp), "{micros}");
        };
        for micros in [
            0,
            1,
            999_999,
            86_399_999_999,
            86_400_000_000,
            951_782_400_000_000,   // 2000-02-29
            4_107_542_400_000_000, // 2100-03-01
            1_795_000_000_123_456,
            MAX_MICROS, // 9999-12-31T23:59:59.999999Z
        ] {
            check(micros);
        }
        // Every 13th day of the range (13 shares no factor with month or year lengths, so every
        // day of the month and of the year comes up), at a varying time of day.
        let mut micros = 0i64;
        while micros <= MAX_MICROS {
            check(micros);
            micros += 13 * 86_400_000_000 + 1_234_567_891;
        }
    }

    #[test]
    fn round_trips_through_text() {
        let t = Timestamp::from_unix_micros(1_795_000_000_123_456).unwrap();
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
    }
}
