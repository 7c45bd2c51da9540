//! Instants as the registry reads and writes them: checked day by day
//! against a calendar counted the slow way, from 1600 to 2400 (leap years,
//! centuries, 400-year cycles, days before 1970), and against known Unix
//! times.

use gourd_lineage::registry::time::{format_instant, parse_instant};

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Checks day `days` (since 1970-01-01) against its calendar date, at a
/// time of day that changes from day to day: every day of the years around
/// each century (where leap years change their rule), every seventh day
/// of the others (each check takes microseconds in a debug build).
fn check_day(days: i64, (y, m, d): (i64, i64, i64)) {
    if !matches!(y % 100, 0 | 99 | 1) && days % 7 != 0 {
        return;
    }
    let of_day = (days * 7_919).rem_euclid(86_400);
    let seconds = days * 86_400 + of_day;
    let text = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day / 60 % 60, of_day % 60);
    assert_eq!(format_instant(seconds), text, "{seconds}");
    assert_eq!(parse_instant(&text), Some(seconds), "{text}");
    if d == 1 {
        let date = &text[..10];
        assert_eq!(parse_instant(date), Some(days * 86_400 + 86_399), "{date}: its last second");
    }
}

#[test]
fn every_day_from_1970_to_2400() {
    let (mut y, mut m, mut d) = (1970, 1, 1);
    let mut days = 0;
    while y <= 2400 {
        check_day(days, (y, m, d));
        d += 1;
        if d > days_in_month(y, m) {
            (d, m) = (1, m + 1);
            if m > 12 {
                (m, y) = (1, y + 1);
            }
        }
        days += 1;
    }
}

#[test]
fn every_day_from_1969_back_to_1600() {
    let (mut y, mut m, mut d) = (1969, 12, 31);
    let mut days = -1;
    while y >= 1600 {
        check_day(days, (y, m, d));
        d -= 1;
        if d == 0 {
            m -= 1;
            if m == 0 {
                (m, y) = (12, y - 1);
            }
            d = days_in_month(y, m);
        }
        days -= 1;
    }
}

#[test]
fn known_unix_times() {
    for (seconds, text) in [
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_000_000_000, "2001-09-09T01:46:40Z"),
        (1_234_567_890, "2009-02-13T23:31:30Z"),
        (1_796_040_000, "2026-11-30T12:00:00Z"),
        (2_147_483_647, "2038-01-19T03:14:07Z"),
        (4_102_444_800, "2100-01-01T00:00:00Z"),
        (-62_167_219_200, "0000-01-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ] {
        assert_eq!(format_instant(seconds), text);
        assert_eq!(parse_instant(text), Some(seconds), "{text}");
    }
}

#[test]
fn offsets_fractions_and_the_forms_git_writes() {
    let noon = Some(1_796_040_000);
    for text in [
        "2026-11-30T12:00:00Z",
        "2026-11-30T12:00:00z",
        "2026-11-30t12:00:00Z",
        "2026-11-30 12:00:00Z",
        "2026-11-30T12:00:00.250Z",
        "2026-11-30T17:30:00+05:30",
        "2026-11-30T06:45:00-05:15",
        "2026-12-01T01:00:00.999+13:00",
        "  2026-11-30T12:00:00Z\n",
        "@1796040000",
        "@1796040000 +0100",
    ] {
        assert_eq!(parse_instant(text), noon, "{text}");
    }
    assert_eq!(parse_instant("@-5 +0000"), Some(-5));
    // The last second of a day, and a leap second (the next day's first).
    assert_eq!(parse_instant("2026-11-30T23:59:59Z"), Some(1_796_083_199));
    assert_eq!(parse_instant("2026-11-30T23:59:60Z"), Some(1_796_083_200));
    assert_eq!(parse_instant("2026-11-30T23:00:00Z"), Some(1_796_079_600));
    assert_eq!(parse_instant("2026-11-30T00:59:00Z"), Some(1_796_000_340));
    assert_eq!(parse_instant("2026-11-30"), Some(1_796_083_199), "a day means its last second");
    assert_eq!(parse_instant("2026-12-31"), Some(1_798_761_599));
    assert_eq!(parse_instant("2026-01-01"), Some(1_767_311_999));
}

#[test]
fn what_is_not_an_instant() {
    for bad in [
        "",
        "yesterday",
        "@",
        "@soon",
        "2026",
        "2026-11",
        "2026-11-30-01",
        "20266-11-30",
        "2026-1-30",
        "2026-+1-30",
        "2026-11-+3",
        "+026-11-30",
        "2026-00-10",
        "2026-13-01",
        "2026-11-00",
        "2026-11-32",
        "2026-11-30T12:00:00",
        "2026-11-30T12:00Z",
        "2026-11-30T12:00:00:00Z",
        "2026-11-30T24:00:00Z",
        "2026-11-30T23:60:00Z",
        "2026-11-30T23:59:61Z",
        "2026-11-30T1a:00:00Z",
        "2026-11-30T12:00:00+0530",
        "2026-11-30T12:00:00+5:30",
        "2026-11-30T12:00:00+05:3",
        "2026-11-30T12:00:00Zulu",
    ] {
        assert_eq!(parse_instant(bad), None, "{bad:?}");
    }
}
