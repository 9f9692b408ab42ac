//! Times written with `%{…}t`: Apache formats them with C's `strftime`
//! (`%{%Y-%m-%dT%H:%M:%S%z}t`, `%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t`),
//! which jiff's `strptime` reads back. Directives that meet, separated only
//! by text, make one pattern: the time is read from all of them at once.

use super::time::{Civil, LineTime};
use jiff::fmt::strtime::BrokenDownTime;

/// One `%{…}t` directive as a piece of a `strptime` pattern.
pub fn piece(name: &str) -> Result<String, String> {
    let name = name.strip_prefix("begin:").or_else(|| name.strip_prefix("end:")).unwrap_or(name);
    match name {
        "sec" => Ok("%s".into()),
        "msec_frac" | "usec_frac" => Ok("%f".into()),
        "msec" | "usec" => Err(format!(
            "%{{{name}}}t (milliseconds or microseconds since 1970) is not read: log %{{sec}}t.%{{{name}_frac}}t, or a date and time"
        )),
        _ => Ok(name.into()),
    }
}

/// Text between directives, as a pattern matches it.
pub fn literal(text: &[u8]) -> String {
    String::from_utf8_lossy(text).replace('%', "%%")
}

/// Two instants a pattern must give back whole: one with a two-digit day
/// and hour, one with a space-padded (`%e`, `%k`) day and hour.
const SAMPLES: [(i64, i32); 2] = [(971_211_336, -25_200), (947_048_705, 3_600)];

/// Checks that `pattern` gives back a whole date and time (or an instant);
/// returns whether what it writes may hold `stop` (then a value's end is
/// found by reading it, not by looking for `stop`).
pub fn check(pattern: &str, stop: Option<u8>) -> Result<bool, String> {
    let mut holds_stop = false;
    for (epoch, offset) in SAMPLES {
        let tz = jiff::tz::TimeZone::fixed(
            jiff::tz::Offset::from_seconds(offset).map_err(|e| e.to_string())?,
        );
        let ts = jiff::Timestamp::from_second(epoch).map_err(|e| e.to_string())?;
        let zoned = jiff::ZonedDateTime::new(ts, tz);
        let text = jiff::fmt::strtime::format(pattern, &zoned)
            .map_err(|e| format!("the time format {pattern:?} cannot be written: {e}"))?;
        let back = read(pattern, text.as_bytes()).ok_or_else(|| {
            format!("the time format {pattern:?} cannot be read back (it wrote {text:?}): it needs a whole date and time, or %s; %Z, %c, %x, %X and %r are not read")
        })?;
        let wall = civil(zoned.datetime());
        let same = match back {
            Read::At(t) => t.epoch == epoch,
            Read::Wall(c) => Some(c) == wall,
        };
        if !same {
            return Err(format!(
                "the time format {pattern:?} does not give back the time it wrote ({text:?}): it needs a whole date and time (year, month, day, hours, minutes, seconds), or %s"
            ));
        }
        holds_stop |= stop.is_some_and(|s| text.as_bytes().contains(&s));
    }
    Ok(holds_stop)
}

/// A time read with a pattern: an instant (with an offset, or `%s`), or a
/// wall time for the source's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The instant, with the offset written (0 for `%s`).
    At(LineTime),
    /// A wall time without an offset.
    Wall(Civil),
}

/// Reads `value` with `pattern`, all of it.
pub fn read(pattern: &str, value: &[u8]) -> Option<Read> {
    let tm = BrokenDownTime::parse(pattern, value).ok()?;
    if tm.offset().is_none()
        && let Ok(ts) = tm.to_timestamp()
    {
        return Some(Read::At(LineTime { epoch: ts.as_second(), offset: 0 }));
    }
    let wall = civil(tm.to_datetime().ok()?)?;
    Some(match tm.offset() {
        Some(o) => Read::At(wall.with_offset(o.seconds())),
        None => Read::Wall(wall),
    })
}

/// jiff's civil time as ours (`None` out of our range).
fn civil(dt: jiff::civil::DateTime) -> Option<Civil> {
    let [month, day, hour, minute, second] =
        [dt.month(), dt.day(), dt.hour(), dt.minute(), dt.second()].map(|v| v as u8);
    Civil::new(i64::from(dt.year()), month, day, hour, minute, second)
}

/// How long the time written at the start of `s` is, read with `pattern`.
pub fn len(pattern: &str, s: &[u8]) -> Option<usize> {
    BrokenDownTime::parse_prefix(pattern, s).ok().map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_what_apache_writes() {
        let at = |p: &str, v: &str| match read(p, v.as_bytes()) {
            Some(Read::At(t)) => Some((t.epoch, t.offset)),
            _ => None,
        };
        // 2025-10-10T11:55:31Z
        let want = Some((1_760_097_331, 7_200));
        assert_eq!(at("%Y-%m-%dT%H:%M:%S%z", "2025-10-10T13:55:31+0200"), want);
        assert_eq!(at("%Y-%m-%dT%H:%M:%S%:z", "2025-10-10T13:55:31+02:00"), want);
        assert_eq!(at("%d/%b/%Y %T.%f %z", "10/Oct/2025 13:55:31.123 +0200"), want);
        assert_eq!(at("%s", "1760097331"), Some((1_760_097_331, 0)));
        let wall = read("%Y-%m-%d %H:%M:%S", b"2025-10-10 13:55:31");
        assert_eq!(wall, Some(Read::Wall(Civil::new(2025, 10, 10, 13, 55, 31).unwrap())));
        assert_eq!(read("%Y-%m-%d %H:%M:%S", b"2025-02-30 13:55:31"), None);
        assert_eq!(len("%Y-%m-%d %H:%M:%S", b"2025-10-10 13:55:31 1.2.3.4"), Some(19));
    }

    #[test]
    fn patterns_are_checked() {
        assert_eq!(check("%Y-%m-%dT%H:%M:%S%z", Some(b' ')), Ok(false));
        assert_eq!(check("%d/%b/%Y %T", Some(b' ')), Ok(true));
        assert_eq!(check("%e %b %Y %T", Some(b']')), Ok(false));
        assert!(check("%Y-%m-%d", None).unwrap_err().contains("whole date and time"));
        assert!(check("%H:%M:%S", None).is_err());
        assert!(check("%d/%b/%Y:%H:%M:%S %Z", None).unwrap_err().contains("%Z"));
        assert_eq!(piece("end:%s").as_deref(), Ok("%s"));
        assert!(piece("msec").unwrap_err().contains("%{sec}t.%{msec_frac}t"));
    }
}
