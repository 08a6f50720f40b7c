//! How long an upstream's `Retry-After` asks to wait (RFC 9110 §10.2.3):
//! a delay in seconds or an HTTP date.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;

use crate::error::Rejection;

/// The wait a refusal's `Retry-After` asks for at `now`; `None` without
/// one, when it is unreadable, or when its date has passed.
pub(crate) fn retry_after(rejection: &Rejection, now: SystemTime) -> Option<Duration> {
    let value = rejection.header(RETRY_AFTER.as_str())?.to_str().ok()?;
    parse(value, now)
}

/// Reads `delay-seconds` or an `HTTP-date` (IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms recipients must accept).
fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    date.duration_since(now).ok().filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// Wed, 21 Oct 2015 07:28:00 GMT.
    fn at(offset_secs: i64) -> SystemTime {
        let base = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        if offset_secs >= 0 {
            base + Duration::from_secs(offset_secs.unsigned_abs())
        } else {
            base - Duration::from_secs(offset_secs.unsigned_abs())
        }
    }

    #[test]
    fn seconds_are_read_whatever_the_time() {
        assert_eq!(parse(" 12 ", at(0)), Some(Duration::from_secs(12)));
        assert_eq!(parse("0", at(0)), Some(Duration::ZERO));
        assert_eq!(parse("-3", at(0)), None);
        assert_eq!(parse("1.5", at(0)), None);
        assert_eq!(parse("soon", at(0)), None);
    }

    #[test]
    fn a_date_is_the_wait_until_it_from_the_clock() {
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse(date, at(-90)), Some(Duration::from_secs(90)));
        assert_eq!(parse(date, at(-3600)), Some(Duration::from_secs(3600)));
        assert_eq!(parse(date, at(0)), None, "now: no wait");
        assert_eq!(parse(date, at(5)), None, "passed: no wait");
        // The obsolete forms of the same instant.
        for obsolete in [
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse(obsolete, at(-90)),
                Some(Duration::from_secs(90)),
                "{obsolete}"
            );
        }
        assert_eq!(parse("Wed, 32 Oct 2015 07:28:00 GMT", at(-90)), None);
    }
}
