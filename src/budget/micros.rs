//! Money as an integer count of millionths of a US dollar.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

/// An amount of money in micro-dollars (millionths of a US dollar).
///
/// Money is counted in integers so sums never drift. Amounts are read from
/// decimal text (`"2.5"`, `"0.000075"`) exactly; more than six decimal
/// places is an error rather than a silent rounding.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::Micros;
///
/// let price: Micros = "32.00".parse().unwrap();
/// assert_eq!(price, Micros::new(32_000_000));
/// assert_eq!(price.to_string(), "32");
/// assert_eq!(Micros::new(1_500).to_string(), "0.0015");
/// assert!("0.0000001".parse::<Micros>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(u64);

impl Micros {
    /// Nothing.
    pub const ZERO: Micros = Micros(0);

    /// `micros` millionths of a dollar.
    pub const fn new(micros: u64) -> Self {
        Micros(micros)
    }

    /// The amount in millionths of a dollar.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Reads a JSON price: a decimal string or a non-negative number.
    ///
    /// A number is read through its shortest decimal form (the one it was
    /// written with), so `2.5` and `"2.5"` are the same price.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Self, ParseMicrosError> {
        match value {
            serde_json::Value::String(text) => text.parse(),
            serde_json::Value::Number(number) => match (number.as_u64(), number.as_f64()) {
                (Some(whole), _) => whole
                    .checked_mul(1_000_000)
                    .map(Micros)
                    .ok_or_else(|| ParseMicrosError::new(number.to_string(), "too large")),
                (None, Some(float)) if float.is_finite() => format!("{float}").parse(),
                _ => Err(ParseMicrosError::new(number.to_string(), "not a price")),
            },
            other => Err(ParseMicrosError::new(other.to_string(), "not a price")),
        }
    }
}

impl Add for Micros {
    type Output = Micros;

    /// Adds, saturating at `u64::MAX`.
    fn add(self, other: Micros) -> Micros {
        Micros(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Micros {
    fn add_assign(&mut self, other: Micros) {
        *self = *self + other;
    }
}

impl fmt::Display for Micros {
    /// Dollars, without trailing zeros: `4`, `0.0015`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl FromStr for Micros {
    type Err = ParseMicrosError;

    /// Reads dollars written as decimal digits with at most six decimal
    /// places (`"4"`, `"0.40"`, `".5"`); no sign, no exponent.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseMicrosError::new(text.to_owned(), reason);
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let is_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
            return Err(error("not a decimal number of dollars"));
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > 6 {
            return Err(error("more than six decimal places"));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| error("too large"))?
        };
        let fraction: u64 = format!("{fraction:0<6}").parse().unwrap_or(0);
        whole
            .checked_mul(1_000_000)
            .and_then(|micros| micros.checked_add(fraction))
            .map(Micros)
            .ok_or_else(|| error("too large"))
    }
}

/// A price that is not a non-negative decimal amount of dollars with at
/// most six decimal places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMicrosError {
    text: String,
    reason: &'static str,
}

impl ParseMicrosError {
    fn new(text: String, reason: &'static str) -> Self {
        Self { text, reason }
    }
}

impl fmt::Display for ParseMicrosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid amount {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseMicrosError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_decimal_dollars_exactly() {
        for (text, micros) in [
            ("0", 0),
            ("4", 4_000_000),
            ("4.00", 4_000_000),
            ("0.40", 400_000),
            (".5", 500_000),
            ("7.", 7_000_000),
            ("0.000001", 1),
            ("0.0000010", 1),
            ("0.1", 100_000),
            ("18446744073709.551615", u64::MAX),
        ] {
            assert_eq!(text.parse::<Micros>(), Ok(Micros(micros)), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for text in [
            "",
            ".",
            "-1",
            "+1",
            "1e3",
            "1,5",
            "0.0000001",
            "abc",
            "18446744073709.551616",
        ] {
            assert!(text.parse::<Micros>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn json_numbers_read_as_they_were_written() {
        for (value, micros) in [
            (json!(2.5), 2_500_000),
            (json!(0.1), 100_000),
            (json!(0.3), 300_000),
            (json!(32), 32_000_000),
            (json!(0.000075), 75),
            (json!("0.6"), 600_000),
        ] {
            assert_eq!(Micros::from_json(&value), Ok(Micros(micros)), "{value}");
        }
        for value in [json!(-1), json!(-0.5), json!(1e-7), json!(null), json!([1])] {
            assert!(Micros::from_json(&value).is_err(), "{value}");
        }
    }

    #[test]
    fn prints_dollars_without_trailing_zeros() {
        assert_eq!(Micros(0).to_string(), "0");
        assert_eq!(Micros(1).to_string(), "0.000001");
        assert_eq!(Micros(2_500_000).to_string(), "2.5");
        assert_eq!(Micros(12_000_340).to_string(), "12.00034");
    }

    #[test]
    fn sums_saturate() {
        assert_eq!(Micros(u64::MAX) + Micros(1), Micros(u64::MAX));
        let mut total = Micros(1);
        total += Micros(2);
        assert_eq!(total, Micros(3));
    }
}
