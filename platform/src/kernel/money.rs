//! Money as API.md promises it: an exact decimal, never a float. A request's
//! amount follows one rule: a whole number written without leading zeros
//! ("0", "750"), optionally followed by a point and one or two digits
//! ("750.5", "749.99"). Nothing else: no sign, no spaces, no "5.", ".5",
//! "007" or "1e3". Responses always carry two fraction digits. Postgres keeps
//! it as `numeric(10,2)`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    /// 99 999 999.99: what `numeric(10,2)` holds.
    pub const MAX: Money = Money(Decimal::from_parts(1_410_065_407, 2, 0, false, 2)); // 9_999_999_999 × 10⁻²

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new("is required"));
        }
        if raw.starts_with('-') {
            return Err(Invalid::new("must not be negative"));
        }
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let whole_is_plain = is_digits(whole) && (whole == "0" || !whole.starts_with('0'));
        let fraction_is_plain = !raw.contains('.') || is_digits(fraction);
        if !whole_is_plain || !fraction_is_plain {
            return Err(Invalid::new(
                "must be a whole number, optionally with a point and one or two digits: 750, 750.5 or 749.99 (no sign, spaces or leading zeros)",
            ));
        }
        if fraction.len() > 2 {
            return Err(Invalid::new("must have at most two fraction digits"));
        }
        // Only now: Decimal's own parser is laxer ("1_000", "+5", "1e3").
        let amount = Decimal::from_str(raw).map_err(|_| Invalid::new("must be at most 99999999.99"))?;
        let money = Money(amount);
        if money > Self::MAX {
            return Err(Invalid::new("must be at most 99999999.99"));
        }
        Ok(money)
    }

    /// An optional bound: empty means none.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, Invalid> {
        if raw.is_empty() { Ok(None) } else { Self::parse(raw).map(Some) }
    }

    pub fn from_decimal(amount: Decimal) -> Self {
        Money(amount)
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    /// The amount in cents (it has at most two fraction digits).
    pub fn cents(self) -> i64 {
        use rust_decimal::prelude::ToPrimitive as _;
        // At most 99 999 999.99 × 100 (and sums of those) fit an i64.
        (self.0 * Decimal::ONE_HUNDRED).trunc().to_i64().unwrap_or(i64::MAX)
    }

    /// `self × quantity`, exact.
    pub fn times(self, quantity: i64) -> Money {
        Money(self.0 * Decimal::from(quantity))
    }
}

/// What the database hands back: `numeric(10,2)` columns already hold the rules.
impl From<Decimal> for Money {
    fn from(amount: Decimal) -> Self {
        Money(amount)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::default(), |total, amount| total + amount)
    }
}

/// Two fraction digits on the wire, always: "750" comes back as "750.00".
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0.round_dp(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_one_digit_amounts_are_accepted_and_shown_with_two_digits() {
        assert_eq!(Money::parse("750").unwrap().to_string(), "750.00");
        assert_eq!(Money::parse("750.5").unwrap().to_string(), "750.50");
        assert_eq!(Money::parse("749.99").unwrap().to_string(), "749.99");
        assert_eq!(Money::parse("0").unwrap().to_string(), "0.00");
        assert_eq!(Money::parse("0.05").unwrap().to_string(), "0.05");
        assert_eq!(Money::parse("10.00").unwrap().to_string(), "10.00");
        assert_eq!(Money::parse("99999999.99").unwrap(), Money::MAX);
    }

    #[test]
    fn a_price_with_three_fraction_digits_is_refused() {
        assert!(Money::parse("1.999").is_err());
    }

    #[test]
    fn negative_oversized_and_non_plain_amounts_are_refused() {
        for raw in [
            "-1",
            "100000000",
            "99999999.991",
            "",
            "abc",
            "1e3",
            "+5",
            "1_000",
            ".",
            "1.2.3",
            " 5",
            "5 ",
            "NaN",
            "5.",
            ".5",
            "007",
            "00",
            "01.5",
            "5.-1",
            "٣",
            "99999999999999999999999999999999",
        ] {
            assert!(Money::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn sums_are_exact() {
        let total: Money = ["0.10", "0.20"].iter().map(|raw| Money::parse(raw).unwrap()).sum();
        assert_eq!(total, Money::parse("0.30").unwrap());
        assert_eq!(Money::parse("19.99").unwrap().times(3).to_string(), "59.97");
    }
}
