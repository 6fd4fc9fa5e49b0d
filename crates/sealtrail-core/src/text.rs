//! Wording shared by every message and report sealtrail prints: a number with its noun in
//! the right form ("1 entry", "2 entries").

use std::fmt;

/// `n` followed by `one` when `n` is 1 and by `many` otherwise, for `format!` and `#[error]`.
pub fn count<'a>(n: u64, one: &'a str, many: &'a str) -> Count<'a> {
    Count { n, one, many }
}

/// A counted noun; see [`count`].
#[derive(Debug, Clone, Copy)]
pub struct Count<'a> {
    n: u64,
    one: &'a str,
    many: &'a str,
}

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.n == 1 { self.one } else { self.many };
        write!(f, "{} {noun}", self.n)
    }
}

/// `count(n, "entry", "entries")`, the noun most messages count.
pub fn entries(n: u64) -> Count<'static> {
    count(n, "entry", "entries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_number_plural() {
        assert_eq!(entries(1).to_string(), "1 entry");
        assert_eq!(entries(0).to_string(), "0 entries");
        assert_eq!(entries(2).to_string(), "2 entries");
        assert_eq!(
            count(1, "violation", "violations").to_string(),
            "1 violation"
        );
        assert_eq!(
            count(11, "violation", "violations").to_string(),
            "11 violations"
        );
    }
}
