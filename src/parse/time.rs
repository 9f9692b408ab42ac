//! Timestamps as web servers write them, turned into Unix seconds.
//!
//! Hand-written because these run for every candidate line: the Apache `%t`
//! form `10/Oct/2000:13:55:36 -0700` is parsed at fixed positions with no
//! allocation, which is several times faster than a general parser (jiff is
//! the oracle in the property test). Zone look-ups for lines without an offset
//! go through [`Zone`], which uses jiff. Nothing here reads a clock.

use jiff::tz::TimeZone;

/// Earliest year accepted; older dates are "impossible" and skipped.
pub const MIN_YEAR: i64 = 1970;
/// Latest year accepted (window state stores seconds as `u32`).
pub const MAX_YEAR: i64 = 2105;

/// A wall-clock date and time as written in a log line, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Full year, `MIN_YEAR..=MAX_YEAR`.
    pub year: i64,
    /// Month 1–12.
    pub month: u8,
    /// Day of month, valid for the month and year.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–60 (a leap second counts as the 59th).
    pub second: u8,
}

/// A line's instant: Unix seconds plus the UTC offset to show it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub epoch: i64,
    /// Offset east of UTC in seconds, as written or as the zone gave it.
    pub offset: i32,
}

impl Civil {
    /// Builds a civil time, or `None` when any field is out of range.
    pub fn new(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Civil> {
        let ok = (MIN_YEAR..=MAX_YEAR).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second <= 60;
        ok.then_some(Civil { year, month, day, hour, minute, second: second.min(59) })
    }

    /// Seconds since the epoch if this wall time were UTC.
    pub fn epoch_as_utc(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The instant when this wall time carries an explicit UTC offset.
    pub fn with_offset(&self, offset: i32) -> LineTime {
        LineTime { epoch: self.epoch_as_utc() - i64::from(offset), offset }
    }
}

/// The zone that gives meaning to wall times written without an offset.
#[derive(Debug, Clone)]
pub enum Zone {
    /// Coordinated Universal Time.
    Utc,
    /// A jiff time zone (the system's local zone, or a named one).
    Tz(TimeZone),
}

impl Zone {
    /// The machine's local zone (from `TZ` or `/etc/localtime`), UTC if unknown.
    pub fn local() -> Zone {
        Zone::Tz(TimeZone::try_system().unwrap_or(TimeZone::UTC))
    }

    /// A zone by IANA name such as `Europe/Zurich`.
    pub fn named(name: &str) -> Option<Zone> {
        TimeZone::get(name).ok().map(Zone::Tz)
    }

    /// Resolves a wall time; a time repeated or skipped by a DST change takes
    /// the earlier offset, as jiff's "compatible" strategy does.
    pub fn resolve(&self, c: &Civil) -> Option<LineTime> {
        self.resolve_at(c, i64::MIN)
    }

    /// Resolves a wall time read at `now` (Unix seconds). In the hour a DST
    /// change repeats, a time takes the later offset when that puts it at
    /// most that hour before `now` (and not over a minute after): a line
    /// read as it is written in the repeated hour. Otherwise, the earlier
    /// offset: taken always, the repeated hour's lines went an hour back, so
    /// a client's hits across the change were late or counted with hits an
    /// hour older. A replay long after reads the repeated hour as the first.
    pub fn resolve_at(&self, c: &Civil, now: i64) -> Option<LineTime> {
        use jiff::tz::AmbiguousOffset;
        let Zone::Tz(tz) = self else { return Some(c.with_offset(0)) };
        let dt = jiff::civil::DateTime::new(
            i16::try_from(c.year).ok()?,
            c.month as i8,
            c.day as i8,
            c.hour as i8,
            c.minute as i8,
            c.second as i8,
            0,
        )
        .ok()?;
        let ambiguous = tz.to_ambiguous_timestamp(dt);
        if let AmbiguousOffset::Fold { before, after } = ambiguous.offset() {
            let (first, second) = (c.with_offset(before.seconds()), c.with_offset(after.seconds()));
            let repeat = second.epoch - first.epoch;
            if (second.epoch - 60..second.epoch + repeat).contains(&now) {
                return Some(second);
            }
        }
        let ts = ambiguous.compatible().ok()?;
        Some(LineTime { epoch: ts.as_second(), offset: tz.to_offset(ts).seconds() })
    }

    /// The date (year, month, day) that the instant `epoch` has in this zone.
    pub fn date_of(&self, epoch: i64) -> (i64, u8, u8) {
        let offset = match self {
            Zone::Utc => 0,
            Zone::Tz(tz) => jiff::Timestamp::from_second(epoch)
                .map(|ts| tz.to_offset(ts).seconds())
                .unwrap_or(0),
        };
        civil_from_days((epoch + i64::from(offset)).div_euclid(86_400))
    }
}

/// Days in `month` of `year` (proleptic Gregorian).
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats an instant as RFC 3339 in the given offset, e.g.
/// `2000-10-10T13:55:36-07:00`.
pub fn rfc3339(t: LineTime) -> String {
    let local = t.epoch + i64::from(t.offset);
    let (y, mo, d) = civil_from_days(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    let off = t.offset.unsigned_abs();
    // Written digit by digit: `format!` was a seventh of a replay that
    // alerted on every line.
    let mut out = String::with_capacity(25);
    match u32::try_from(y) {
        Ok(y) if y < 10_000 => push_digits(&mut out, y, 4),
        _ => out.push_str(&format!("{y:04}")),
    }
    out.push('-');
    push_digits(&mut out, u32::from(mo), 2);
    out.push('-');
    push_digits(&mut out, u32::from(d), 2);
    out.push('T');
    for (i, part) in [secs / 3600, secs / 60 % 60, secs % 60].into_iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_digits(&mut out, part as u32, 2);
    }
    out.push(if t.offset < 0 { '-' } else { '+' });
    push_digits(&mut out, off / 3600, 2);
    out.push(':');
    push_digits(&mut out, off / 60 % 60, 2);
    out
}

/// Appends `n` as exactly `width` decimal digits (`n` < 10^`width`).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for k in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(k) % 10) as u8));
    }
}

/// Month number from a three-letter English abbreviation (`Jan` … `Dec`).
pub fn month_from_abbr(b: &[u8]) -> Option<u8> {
    // Compared as one integer: slice patterns would call memcmp per arm.
    let [a, b, c] = *b else { return None };
    let m = match u32::from_be_bytes([0, a, b, c]) {
        0x4a_61_6e => 1,  // Jan
        0x46_65_62 => 2,  // Feb
        0x4d_61_72 => 3,  // Mar
        0x41_70_72 => 4,  // Apr
        0x4d_61_79 => 5,  // May
        0x4a_75_6e => 6,  // Jun
        0x4a_75_6c => 7,  // Jul
        0x41_75_67 => 8,  // Aug
        0x53_65_70 => 9,  // Sep
        0x4f_63_74 => 10, // Oct
        0x4e_6f_76 => 11, // Nov
        0x44_65_63 => 12, // Dec
        _ => return None,
    };
    Some(m)
}

/// Reads exactly `b.len()` ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn d2(b: &[u8]) -> Option<u8> {
    digits(b).map(|v| v as u8)
}

/// `HH:MM:SS` at the start of `b`.
fn hms(b: &[u8]) -> Option<(u8, u8, u8)> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((d2(&b[0..2])?, d2(&b[3..5])?, d2(&b[6..8])?))
}

/// Parses Apache's `%t` body `10/Oct/2000:13:55:36 -0700` (without brackets).
///
/// # Performance
/// Fixed positions, no allocation; about 10 ns a call on this machine.
pub fn parse_clf(b: &[u8]) -> Option<LineTime> {
    if b.len() < 26 || b[20] != b' ' {
        return None;
    }
    let offset = parse_offset(&b[21..26])?;
    Some(parse_clf_wall(b)?.with_offset(offset))
}

/// The wall time of a `%t` body `10/Oct/2000:13:55:36`, ignoring what follows
/// (some servers write no offset).
pub fn parse_clf_wall(b: &[u8]) -> Option<Civil> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let day = d2(&b[0..2])?;
    let month = month_from_abbr(&b[3..6])?;
    let year = i64::from(digits(&b[7..11])?);
    let (h, mi, s) = hms(&b[12..20])?;
    Civil::new(year, month, day, h, mi, s)
}

/// `+hhmm` / `-hhmm` as seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i32> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hh = i32::from(d2(b.get(1..3)?)?);
    let mm = i32::from(d2(b.get(3..5)?)?);
    (hh < 24 && mm < 60).then_some(sign * (hh * 3600 + mm * 60))
}

/// Parses the Apache error log date `Thu Jul 11 01:21:41 2013`, also with
/// microseconds (`01:21:41.453232`, Apache 2.4). Returns the wall time.
pub fn parse_apache_error(b: &[u8]) -> Option<Civil> {
    // "Www Mmm dd hh:mm:ss[.uuuuuu] yyyy"
    if b.len() < 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' {
        return None;
    }
    let month = month_from_abbr(&b[4..7])?;
    let day = if b[8] == b' ' { d2(&b[9..10])? } else { d2(&b[8..10])? };
    let (h, mi, s) = hms(&b[11..19])?;
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &rest[1 + n..];
    }
    let year = match rest {
        [b' ', y @ ..] if y.len() == 4 => i64::from(digits(y)?),
        _ => return None,
    };
    Civil::new(year, month, day, h, mi, s)
}

/// Parses nginx's error log date `2015/01/21 10:56:10`. Returns the wall time.
pub fn parse_nginx(b: &[u8]) -> Option<Civil> {
    if b.len() < 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let (h, mi, s) = hms(&b[11..19])?;
    Civil::new(year, d2(&b[5..7])?, d2(&b[8..10])?, h, mi, s)
}

/// Today's date, for dating syslog stamps, which carry no year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    year: i64,
    /// Days since 1970-01-01 of today's date.
    days: i64,
}

impl Today {
    /// The date the instant `now` (Unix seconds) has in `zone`.
    pub fn at(now: i64, zone: &Zone) -> Today {
        let (year, month, day) = zone.date_of(now);
        Today { year, days: days_from_civil(year, month, day) }
    }
}

/// Parses a syslog (RFC 3164) date `Feb 15 16:23:00` or `Feb  5 16:23:00`,
/// which has no year: it is `today`'s year, or the year before for a date
/// more than a month after today (lines written before New Year, read
/// after it). Returns the wall time.
pub fn parse_syslog(b: &[u8], today: Today) -> Option<Civil> {
    if b.len() < 15 || b[3] != b' ' || b[6] != b' ' {
        return None;
    }
    let month = month_from_abbr(&b[0..3])?;
    let day = if b[4] == b' ' { d2(&b[5..6])? } else { d2(&b[4..6])? };
    let (h, mi, s) = hms(&b[7..15])?;
    let ahead = days_from_civil(today.year, month, day) - today.days;
    let year = if ahead > 31 { today.year - 1 } else { today.year };
    Civil::new(year, month, day, h, mi, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clf_known_value() {
        let t = parse_clf(b"10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(t.epoch, 971_211_336);
        assert_eq!(t.offset, -7 * 3600);
        assert_eq!(rfc3339(t), "2000-10-10T13:55:36-07:00");
    }

    #[test]
    fn month_names() {
        for (i, m) in MONTHS.iter().enumerate() {
            assert_eq!(month_from_abbr(m.as_bytes()), Some(i as u8 + 1));
        }
        assert_eq!(month_from_abbr(b"jan"), None);
        assert_eq!(month_from_abbr(b"Ja"), None);
    }

    #[test]
    fn impossible_dates_are_rejected() {
        assert!(parse_clf(b"31/Feb/2020:00:00:00 +0000").is_none());
        assert!(parse_clf(b"29/Feb/2021:00:00:00 +0000").is_none());
        assert!(parse_clf(b"29/Feb/2020:00:00:00 +0000").is_some());
        assert!(parse_clf(b"10/Foo/2000:13:55:36 -0700").is_none());
        assert!(parse_clf(b"10/Oct/2000:24:00:00 +0000").is_none());
        assert!(parse_clf(b"10/Oct/1969:13:55:36 +0000").is_none());
        assert!(parse_clf(b"10/Oct/2000:13:55:36 +2400").is_none());
        assert!(parse_clf(b"10/Oct/2000:13:5a:36 +0000").is_none());
    }

    #[test]
    fn error_log_dates() {
        let c = parse_apache_error(b"Sat Jul 20 21:34:49.453232 2013").unwrap();
        assert_eq!((c.year, c.month, c.day, c.hour, c.second), (2013, 7, 20, 21, 49));
        assert!(parse_apache_error(b"Thu Jul 11 01:21:41 2013").is_some());
        assert!(parse_apache_error(b"Thu Jul 11 01:21:41 13").is_none());
        let n = parse_nginx(b"2015/01/21 10:56:10 [error]").unwrap();
        assert_eq!((n.year, n.month, n.day, n.minute), (2015, 1, 21, 56));
        let s = parse_syslog(b"Feb  5 16:23:00 srv", Today::at(1_709_251_200, &Zone::Utc)).unwrap();
        assert_eq!((s.year, s.month, s.day), (2024, 2, 5));
    }

    #[test]
    fn zones_resolve_wall_time() {
        let c = Civil::new(2024, 8, 18, 21, 8, 39).unwrap();
        assert_eq!(Zone::Utc.resolve(&c).unwrap().epoch, c.epoch_as_utc());
        if let Some(z) = Zone::named("Europe/Zurich") {
            let t = z.resolve(&c).unwrap();
            assert_eq!(t.offset, 7200);
            assert_eq!(t.epoch, c.epoch_as_utc() - 7200);
        }
    }

    /// The hour Europe/Berlin repeats on 2025-10-26 (02:00–03:00, first
    /// at +02:00, then at +01:00): read as it is written, each pass at its
    /// own instant; read long after, or outside the repeat, as before.
    #[test]
    fn a_repeated_hour_is_read_by_when_it_is_read() {
        let Some(z) = Zone::named("Europe/Berlin") else { return };
        let c = Civil::new(2025, 10, 26, 2, 30, 0).unwrap();
        let (first, second) = (c.epoch_as_utc() - 7200, c.epoch_as_utc() - 3600);
        for (now, want) in [
            (first, first),
            (first + 5, first),
            (second, second),
            (second + 30, second),
            (second - 30, second),
            (second + 3599, second),
            (second + 3600, first),
            (second + 86_400, first),
            (i64::MIN, first),
        ] {
            assert_eq!(z.resolve_at(&c, now).unwrap().epoch, want, "read at {now}");
        }
        let t = z.resolve_at(&c, second).unwrap();
        assert_eq!(t.offset, 3600);
        // Outside the repeat, `now` changes nothing.
        let plain = Civil::new(2025, 10, 26, 4, 0, 0).unwrap();
        assert_eq!(z.resolve_at(&plain, second).unwrap().epoch, plain.epoch_as_utc() - 3600);
    }

    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

    proptest! {
        /// The fast `%t` parser agrees with jiff on every valid instant.
        #[test]
        fn clf_matches_jiff(secs in 0i64..4_000_000_000, off_min in -1439i32..1440) {
            let offset = jiff::tz::Offset::from_seconds(off_min * 60).unwrap();
            let ts = jiff::Timestamp::from_second(secs).unwrap();
            let dt = offset.to_datetime(ts);
            let sign = if off_min < 0 { '-' } else { '+' };
            let text = format!(
                "{:02}/{}/{:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
                dt.day(), MONTHS[dt.month() as usize - 1], dt.year(), dt.hour(), dt.minute(),
                dt.second(), off_min.abs() / 60, off_min.abs() % 60
            );
            let got = parse_clf(text.as_bytes());
            if (MIN_YEAR..=MAX_YEAR).contains(&i64::from(dt.year())) {
                let got = got.unwrap();
                prop_assert_eq!(got.epoch, secs);
                prop_assert_eq!(got.offset, off_min * 60);
                prop_assert_eq!(rfc3339(got), ts.display_with_offset(offset).to_string());
            } else {
                prop_assert!(got.is_none());
            }
        }

        /// Civil <-> day-number conversion round-trips.
        #[test]
        fn days_round_trip(z in -100_000i64..100_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), z);
        }

        /// No input panics.
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let epoch = |c: Civil| c.epoch_as_utc();
            prop_assert!(parse_clf(&b).is_none_or(|t| t.epoch > -2 * 86_400));
            prop_assert!(parse_apache_error(&b).map(epoch).is_none_or(|e| e >= 0));
            prop_assert!(parse_nginx(&b).map(epoch).is_none_or(|e| e >= 0));
            let today = Today::at(1_600_000_000, &Zone::Utc);
            prop_assert!(parse_syslog(&b, today).map(epoch).is_none_or(|e| e >= 0));
        }
    }
}
