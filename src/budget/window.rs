//! Budget windows: UTC minutes, hours, days and calendar months.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The period a budget counts over; windows start and end on UTC
/// boundaries (a day is 00:00 to 24:00 UTC, a month its calendar month).
///
/// # Example
///
/// ```
/// use tower_realtime::budget::Window;
///
/// assert_eq!(Window::Day.name(), "day");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Window {
    /// A UTC minute.
    Minute,
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
    /// All time: never resets.
    Total,
}

/// One occurrence of a window: which one, and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Period {
    pub(crate) window: Window,
    /// Counts the window's occurrences since the Unix epoch (0 for `Total`).
    pub(crate) number: u64,
    /// When the period ends, in milliseconds since the Unix epoch.
    pub(crate) ends_at_ms: Option<u64>,
}

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

impl Window {
    /// The window's name: `minute`, `hour`, `day`, `month` or `total`.
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
            Window::Total => "total",
        }
    }

    /// A short tag for store keys.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Window::Minute => "m",
            Window::Hour => "h",
            Window::Day => "d",
            Window::Month => "M",
            Window::Total => "t",
        }
    }

    /// The occurrence of this window that contains `now_ms`.
    pub(crate) fn period(self, now_ms: u64) -> Period {
        let fixed = |length: u64| {
            let number = now_ms / length;
            (number, Some((number + 1) * length))
        };
        let (number, ends_at_ms) = match self {
            Window::Minute => fixed(MINUTE_MS),
            Window::Hour => fixed(HOUR_MS),
            Window::Day => fixed(DAY_MS),
            Window::Month => {
                let (year, month) = year_month((now_ms / DAY_MS) as i64);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let end = days_from_civil(next_year, next_month) as u64 * DAY_MS;
                ((year * 12 + i64::from(month) - 1) as u64, Some(end))
            }
            Window::Total => (0, None),
        };
        Period {
            window: self,
            number,
            ends_at_ms,
        }
    }
}

impl Period {
    /// How long until the period ends, from `now_ms`.
    pub(crate) fn remaining(&self, now_ms: u64) -> Option<Duration> {
        self.ends_at_ms
            .map(|end| Duration::from_millis(end.saturating_sub(now_ms)))
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The year and month (1-12) of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The day, counted from 1970-01-01, of the first of `month` in `year`
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T06:30:15.250Z
    const NOW: u64 = 1_796_193_015_250;

    #[test]
    fn fixed_windows_end_on_utc_boundaries() {
        let minute = Window::Minute.period(NOW);
        assert_eq!(minute.ends_at_ms, Some(1_796_193_060_000));
        assert_eq!(minute.remaining(NOW), Some(Duration::from_millis(44_750)));
        let hour = Window::Hour.period(NOW);
        assert_eq!(hour.ends_at_ms, Some(1_796_194_800_000));
        let day = Window::Day.period(NOW);
        assert_eq!(day.ends_at_ms, Some(1_796_256_000_000));
        assert_eq!(day.number, 20_789);
        assert_eq!(Window::Day.period(day.ends_at_ms.unwrap()).number, 20_790);
        assert_eq!(
            Window::Day.period(day.ends_at_ms.unwrap() - 1).number,
            20_789
        );
    }

    #[test]
    fn months_are_calendar_months() {
        let december = Window::Month.period(NOW);
        // 2027-01-01T00:00:00Z
        assert_eq!(december.ends_at_ms, Some(1_798_761_600_000));
        assert_eq!(december.number, 2026 * 12 + 11);
        let january = Window::Month.period(1_798_761_600_000);
        assert_eq!(january.number, 2027 * 12);
        // 2027-02-01T00:00:00Z
        assert_eq!(january.ends_at_ms, Some(1_801_440_000_000));
        // February of a leap year: 2028-02-01 to 2028-03-01 is 29 days.
        let leap = Window::Month.period(1_832_976_000_000);
        assert_eq!(leap.number, 2028 * 12 + 1);
        assert_eq!(leap.ends_at_ms, Some(1_832_976_000_000 + 29 * DAY_MS));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 59, 10_957, 20_789, 2_932_896] {
            let (year, month) = year_month(days);
            let first = days_from_civil(year, month);
            assert!(first <= days && days - first < 31, "{days}");
        }
        assert_eq!(days_from_civil(1970, 1), 0);
        assert_eq!(days_from_civil(2000, 3), 11_017);
    }

    #[test]
    fn the_total_never_ends() {
        let total = Window::Total.period(NOW);
        assert_eq!((total.number, total.ends_at_ms), (0, None));
        assert_eq!(total.remaining(NOW), None);
    }

    #[test]
    fn time_before_the_epoch_is_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(5)), 5);
    }
}
