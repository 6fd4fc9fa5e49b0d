//! The number rules: which JSON numbers have an exact RFC 8785 form, what that form is, and
//! which numbers are safe integers.
//!
//! RFC 8785 writes every number as an IEEE 754 double, spelled the way ECMAScript's
//! `Number.prototype.toString` spells it. An audit log must not change what a producer sent,
//! so [`check_number`] accepts a number only when that spelling denotes exactly the decimal
//! value of the source text. The comparison is made digit by digit rather than through
//! floating point, because a text can round to the same double as its canonical form and still
//! mean a different number. [`safe_integer`] reads an integer from 0 to [`MAX_SAFE_INTEGER`]
//! from any spelling of its value, which is what `seq` and `source.seq` accept.
//!
//! Event parsing (`event`) uses these rules to refuse and normalise numbers, and canonical
//! entries (`canonical`) use them to write numbers. Keeping the rules here, with no dependency
//! on either of those modules, is what lets `canonical` build on `event` without `event`
//! reaching back into `canonical`. The only thing this module depends on is the error type
//! (`error`), for [`number_error`].

use std::io::Write as _;

use crate::error::{EventError, Path, Rule};

/// 2^53 − 1: up to here every integer is exactly an IEEE 754 double, so it has an exact
/// RFC 8785 form and survives any JSON implementation.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A number's RFC 8785 text, formatted on the stack. The longest is 25 bytes
/// (`-0.0000033333333333333333`).
#[derive(Clone, Copy)]
pub(crate) struct EcmaNumber {
    buffer: [u8; 32],
    len: usize,
}

impl EcmaNumber {
    /// Formats a finite double as ECMAScript's `Number.prototype.toString`.
    pub(crate) fn format(value: f64) -> EcmaNumber {
        let mut buffer = [0u8; 32];
        let mut cursor = &mut buffer[..];
        // Integers up to 2^53 print as their digits; writing them directly skips the
        // shortest-digits search.
        let written = if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 {
            write!(cursor, "{}", value as i64).is_ok()
        } else {
            json_canon::to_writer(&mut cursor, &value).is_ok()
        };
        let len = if written { 32 - cursor.len() } else { 0 };
        EcmaNumber { buffer, len }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Both formatters write ASCII only.
        std::str::from_utf8(&self.buffer[..self.len]).unwrap_or("")
    }
}

/// What [`check_number`] found about an acceptable number.
pub(crate) enum NumberCheck {
    /// The text is already its RFC 8785 form.
    Canonical,
    /// The text denotes the same value as this different RFC 8785 form (`1.0` → `1`).
    Normalised(EcmaNumber),
}

/// Why a number has no exact RFC 8785 form.
pub(crate) enum NumberError {
    /// Beyond the largest double.
    NotFinite,
    /// It would be stored as this different value.
    Inexact(EcmaNumber),
    /// Not JSON number syntax (only possible for hand-built values).
    Invalid,
}

/// Accepts a JSON number text iff it is a finite double whose RFC 8785 text denotes the same
/// decimal value. The comparison is on decimal digits, not through floating point, so a text
/// that merely rounds to the same double as its canonical form is still refused.
pub(crate) fn check_number(text: &str) -> Result<NumberCheck, NumberError> {
    if is_short_integer(text) {
        // Up to 15 digits every integer is exact, and its text is canonical but for "-0".
        return Ok(if text == "-0" {
            NumberCheck::Normalised(EcmaNumber::format(0.0))
        } else {
            NumberCheck::Canonical
        });
    }
    let value: f64 = text.parse().map_err(|_| NumberError::Invalid)?;
    if !value.is_finite() {
        return Err(NumberError::NotFinite);
    }
    let canonical = EcmaNumber::format(value);
    if canonical.as_str() == text {
        return Ok(NumberCheck::Canonical);
    }
    match (Decimal::parse(text), Decimal::parse(canonical.as_str())) {
        (Some(source), Some(target)) if source.same_value(&target) => {
            Ok(NumberCheck::Normalised(canonical))
        }
        (Some(_), _) => Err(NumberError::Inexact(canonical)),
        (None, _) => Err(NumberError::Invalid),
    }
}

/// `-?(0|[1-9][0-9]{0,14})`: an integer that is exactly representable in any case.
pub(crate) fn is_short_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text).as_bytes();
    !digits.is_empty()
        && digits.len() <= 15
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
}

pub(crate) fn number_error(path: &Path<'_>, text: &str, error: &NumberError) -> EventError {
    let mut shown = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 40 {
            shown.push('…');
            break;
        }
        shown.push(c);
    }
    let message = match error {
        NumberError::NotFinite => format!(
            "number {shown} is beyond the range of a json number (an ieee 754 double); send it as a string"
        ),
        NumberError::Inexact(canonical) => format!(
            "number {shown} cannot be represented exactly and would be stored as {}; send it as a string",
            canonical.as_str()
        ),
        NumberError::Invalid => format!("{shown} is not a json number"),
    };
    EventError::at(path, Rule::NumberPrecision, message)
}

/// What [`safe_integer`] made of a number text.
pub(crate) enum SafeInteger {
    Value(u64),
    Negative,
    Fraction,
    TooLarge,
    Invalid,
}

/// Reads a number text as an integer in 0..=2^53−1, from any spelling of its value.
pub(crate) fn safe_integer(text: &str) -> SafeInteger {
    let Some(decimal) = Decimal::parse(text) else {
        return SafeInteger::Invalid;
    };
    let Some((digits, len, scale)) = decimal.significant() else {
        return SafeInteger::Value(0);
    };
    if decimal.negative {
        return SafeInteger::Negative;
    }
    if scale < 0 {
        return SafeInteger::Fraction;
    }
    // 2^53 − 1 has 16 digits; anything longer is too large, and 16 digits fit in a u64.
    if len as i64 + scale > 16 {
        return SafeInteger::TooLarge;
    }
    let mut value: u64 = 0;
    for digit in digits {
        value = value * 10 + u64::from(digit - b'0');
    }
    for _ in 0..scale {
        value *= 10;
    }
    if value > MAX_SAFE_INTEGER {
        SafeInteger::TooLarge
    } else {
        SafeInteger::Value(value)
    }
}

/// A JSON number text split into its parts, for comparing decimal values exactly.
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

impl<'a> Decimal<'a> {
    /// Parses `-?digits(.digits)?([eE][+-]?digits)?`. The exponent saturates far beyond any
    /// double's range, which keeps the arithmetic below overflow-free.
    fn parse(text: &'a str) -> Option<Decimal<'a>> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let digits = |s: &'a [u8]| {
            let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
            s.split_at(n)
        };
        let (int, mut rest) = digits(rest);
        if int.is_empty() {
            return None;
        }
        let mut frac: &[u8] = &[];
        if let Some((b'.', after)) = rest.split_first() {
            let (f, after) = digits(after);
            if f.is_empty() {
                return None;
            }
            frac = f;
            rest = after;
        }
        let mut exp: i64 = 0;
        if let Some((b'e' | b'E', after)) = rest.split_first() {
            let (negative_exp, after) = match after.split_first() {
                Some((b'-', a)) => (true, a),
                Some((b'+', a)) => (false, a),
                _ => (false, after),
            };
            let (e, after) = digits(after);
            if e.is_empty() {
                return None;
            }
            for &d in e {
                exp = (exp * 10 + i64::from(d - b'0')).min(1 << 40);
            }
            if negative_exp {
                exp = -exp;
            }
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Decimal {
            negative,
            int,
            frac,
            exp,
        })
    }

    /// The significant digits (no leading or trailing zeros), their count, and the power of
    /// ten they are scaled by; `None` for zero.
    fn significant(&self) -> Option<(impl Iterator<Item = u8> + 'a, usize, i64)> {
        let all = || self.int.iter().chain(self.frac.iter()).copied();
        let total = self.int.len() + self.frac.len();
        let leading = all().take_while(|&d| d == b'0').count();
        if leading == total {
            return None;
        }
        let trailing = all().rev().take_while(|&d| d == b'0').count();
        let len = total - leading - trailing;
        let scale = self.exp - self.frac.len() as i64 + trailing as i64;
        let digits = self
            .int
            .iter()
            .chain(self.frac.iter())
            .copied()
            .skip(leading)
            .take(len);
        Some((digits, len, scale))
    }

    fn same_value(&self, other: &Decimal<'_>) -> bool {
        match (self.significant(), other.significant()) {
            // Zero has no sign in RFC 8785: -0 is 0.
            (None, None) => true,
            (Some((a, a_len, a_scale)), Some((b, b_len, b_scale))) => {
                self.negative == other.negative && a_len == b_len && a_scale == b_scale && a.eq(b)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<String, &'static str> {
        match check_number(text) {
            Ok(NumberCheck::Canonical) => Ok(text.to_owned()),
            Ok(NumberCheck::Normalised(n)) => Ok(n.as_str().to_owned()),
            Err(NumberError::NotFinite) => Err("not finite"),
            Err(NumberError::Inexact(_)) => Err("inexact"),
            Err(NumberError::Invalid) => Err("invalid"),
        }
    }

    #[test]
    fn exact_numbers_are_accepted_and_normalised() {
        for (text, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0e5", "0"),
            ("1", "1"),
            ("1.0", "1"),
            ("1e2", "100"),
            ("1e+2", "100"),
            ("1E2", "100"),
            ("0.1", "0.1"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("1e30", "1e+30"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("0.000000000000000000000000001", "1e-27"),
            ("9007199254740991", "9007199254740991"),
            ("9007199254740992", "9007199254740992"),
            ("-123456789012345", "-123456789012345"),
            ("295147905179352830000", "295147905179352830000"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("0e99999999999999999999999", "0"),
            ("18233.0", "18233"),
            ("333333333.3333333", "333333333.3333333"),
        ] {
            assert_eq!(check(text), Ok(want.to_owned()), "{text}");
        }
    }

    #[test]
    fn inexact_numbers_are_refused() {
        for (text, why) in [
            ("9007199254740993", "inexact"),
            ("1e400", "not finite"),
            ("-1e400", "not finite"),
            ("1e-400", "inexact"),
            ("0.1000000000000000000001", "inexact"),
            ("123456789012345678901234", "inexact"),
            ("333333333.33333329", "inexact"),
            ("295147905179352825856", "inexact"),
            ("2.4703282292062328e-324", "inexact"),
            ("1e99999999999999999999999", "not finite"),
            ("abc", "invalid"),
        ] {
            assert_eq!(check(text), Err(why), "{text}");
        }
    }

    #[test]
    fn safe_integers_accept_any_spelling_of_an_integer() {
        let read = |t: &str| match safe_integer(t) {
            SafeInteger::Value(n) => Ok(n),
            SafeInteger::Negative => Err("negative"),
            SafeInteger::Fraction => Err("fraction"),
            SafeInteger::TooLarge => Err("too large"),
            SafeInteger::Invalid => Err("invalid"),
        };
        assert_eq!(read("0"), Ok(0));
        assert_eq!(read("-0"), Ok(0));
        assert_eq!(read("18233"), Ok(18233));
        assert_eq!(read("1.8233e4"), Ok(18233));
        assert_eq!(read("18233.000"), Ok(18233));
        assert_eq!(read("9007199254740991"), Ok(MAX_SAFE_INTEGER));
        assert_eq!(read("9007199254740992"), Err("too large"));
        assert_eq!(read("1e16"), Err("too large"));
        assert_eq!(read("1e999999999999999"), Err("too large"));
        assert_eq!(read("-1"), Err("negative"));
        assert_eq!(read("1.5"), Err("fraction"));
        assert_eq!(read("1e-1"), Err("fraction"));
        assert_eq!(read("x"), Err("invalid"));
    }

    #[test]
    fn ecma_formatting_of_integers_matches_json_canon() {
        for value in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_992.0,
        ] {
            let mine = EcmaNumber::format(value);
            assert_eq!(mine.as_str(), json_canon::to_string(&value).unwrap());
        }
    }
}
