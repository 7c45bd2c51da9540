//! RFC 3339 timestamps, checked day by day against a calendar counted the
//! slow way, from 1970 to 2400 (leap years, centuries and 400-year cycles).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gourd_core::time::{now, rfc3339};

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[test]
fn every_day_from_1970_to_2400() {
    let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
    let mut days = 0u64;
    while year <= 2400 {
        let at = UNIX_EPOCH + Duration::from_secs(days * 86_400 + 43_200);
        assert_eq!(rfc3339(at), format!("{year:04}-{month:02}-{day:02}T12:00:00.000Z"), "day {days}");
        day += 1;
        if day > days_in_month(year, month) {
            day = 1;
            month += 1;
            if month > 12 {
                month = 1;
                year += 1;
            }
        }
        days += 1;
    }
}

#[test]
fn times_of_day() {
    let at = |secs: u64, millis: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis));
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(86_399, 999), "1970-01-01T23:59:59.999Z");
    assert_eq!(at(86_400, 1), "1970-01-02T00:00:00.001Z");
    assert_eq!(at(13 * 3600 + 61, 50), "1970-01-01T13:01:01.050Z");
    assert_eq!(at(951_782_400 + 7 * 3600 + 8 * 60 + 9, 10), "2000-02-29T07:08:09.010Z");
    // Before 1970 is not a time gourd writes: it reads as the epoch.
    assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(86_400)), "1970-01-01T00:00:00.000Z");
}

#[test]
fn now_is_now() {
    let before = rfc3339(SystemTime::now());
    let stamp = now();
    let after = rfc3339(SystemTime::now());
    assert!(before <= stamp && stamp <= after, "{before} {stamp} {after}");
    assert_eq!(stamp.len(), "2026-01-01T00:00:00.000Z".len());
}
