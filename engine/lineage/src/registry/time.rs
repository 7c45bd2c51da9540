//! Instants as git records them (seconds since the epoch), read from and
//! written as RFC 3339, without a calendar dependency.

/// Seconds since the epoch of `text`: RFC 3339 (`2026-11-30T12:00:00Z`,
/// `2026-11-30T12:00:00.250+01:00`), a day (`2026-11-30`, meaning its last
/// second in UTC: what held at the end of that day), or `@SECONDS` as git
/// writes it.
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(seconds) = text.strip_prefix('@') {
        let seconds = seconds.split_whitespace().next()?;
        return seconds.parse().ok();
    }
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let days = parse_date(date)?;
    let Some(time) = time else { return Some(days * 86_400 + 86_399) };
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => return None,
    };
    let offset = match offset {
        "Z" | "z" => 0,
        _ => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (h, m) = offset[1..].split_once(':')?;
            let (h, m) = (number(h, 2)?, number(m, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let clock = clock.split('.').next()?;
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (h, m, s) = (number(h, 2)?, number(m, 2)?, number(s, 2)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

fn number(text: &str, digits: usize) -> Option<i64> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (y, m, d) = (number(y, 4)?, number(m, 2)?, number(d, 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // A day past its month's end (2026-02-30) would count on into the next.
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `2026-11-30T12:00:00Z`.
pub fn format_instant(seconds: i64) -> String {
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2026-11-30T12:00:00Z"), Some(1_796_040_000));
        assert_eq!(parse_instant("2026-11-30T13:00:00.999+01:00"), Some(1_796_040_000));
        assert_eq!(parse_instant("2026-11-30"), Some(1_796_083_199));
        assert_eq!(parse_instant("@1796040000 +0000"), Some(1_796_040_000));
        assert_eq!(format_instant(1_796_040_000), "2026-11-30T12:00:00Z");
        assert_eq!(parse_instant("2024-02-29"), Some(1_709_251_199));
        assert_eq!(parse_instant("2026-11-30T23:59:59+23:59"), Some(1_796_083_199 - 86_340));
        assert_eq!(parse_instant("2026-11-30T00:00:00-23:00"), Some(1_796_083_199 - 86_399 + 82_800));
        for bad in [
            "",
            "2026-13-01",
            "2026-11-30T12:00",
            "2026-11-30T25:00:00Z",
            "yesterday",
            "2026-1-30",
            "2026-02-29",
            "2026-02-30",
            "2026-04-31",
            "2100-02-29",
            "2026-11-31T00:00:00Z",
            "2026-11-30T12:00:00+24:00",
            "2026-11-30T12:00:00+01:60",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
        for seconds in [0, 951_782_400, 1_796_040_000, 4_102_444_800] {
            assert_eq!(parse_instant(&format_instant(seconds)), Some(seconds));
        }
    }
}
