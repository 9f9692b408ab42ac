//! Durations as people write and read them: `600`, `10m`, `1h30m`,
//! `250ms`, `2 days` in, `10 minutes` out. The bottom layer: no other
//! module of the crate is imported here.

use std::time::Duration;

/// Parses a duration: whole seconds (`600`) or jiff's friendly format
/// (`10m`, `1h30m`, `1.5h`, `250ms`, `2 days`, `10 minutes`; days and weeks
/// count 24 hours and 7 days). Negative durations, months and years are
/// refused. The error says what is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a duration: use seconds (600) or a number with a unit, \
             such as \"30s\", \"10m\", \"1h30m\" or \"2d\""
        )
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    let span: jiff::Span = t.parse().map_err(|_| bad())?;
    let signed = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|_| bad())?;
    Duration::try_from(signed).map_err(|_| bad())
}

/// Whole seconds as a [`Duration`]; negative seconds are refused.
pub fn from_secs(secs: i64) -> Result<Duration, String> {
    u64::try_from(secs)
        .map(Duration::from_secs)
        .map_err(|_| format!("{secs} is not a duration: it must not be negative"))
}

/// Renders seconds for messages: `10 minutes`, `1 hour`, `90 seconds`.
pub fn human_duration(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |t: &str| parse_duration(t).map(|d| d.as_millis());
        assert_eq!(d("10m"), Ok(600_000));
        assert_eq!(d("600"), Ok(600_000));
        assert_eq!(d("1h"), Ok(3_600_000));
        assert_eq!(d("1h30m"), Ok(5_400_000));
        assert_eq!(d("10 minutes"), Ok(600_000));
        assert_eq!(d("2d"), Ok(172_800_000));
        assert_eq!(d("250ms"), Ok(250));
        for bad in ["ten", "", "-5m", "1 month", "1y"] {
            assert!(parse_duration(bad).unwrap_err().contains("is not a duration"), "{bad}");
        }
        assert_eq!(from_secs(30).unwrap().as_secs(), 30);
        assert!(from_secs(-1).is_err());
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "1 hour");
        assert_eq!(human_duration(90), "90 seconds");
    }
}
