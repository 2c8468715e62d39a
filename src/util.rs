//! Small pure helpers shared by the config and the CLI: human durations and times.

use chrono::{DateTime, Duration, Utc};

/// Parses a human duration: a whole number followed by `s`, `m`, `h` or `d`
/// (`"60s"`, `"4h"`, `"7d"`). Returns a message suitable for a config error otherwise.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit: write it like 60s, 15m, 4h or 7d"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` does not start with a number: write it like 60s, 15m, 4h or 7d"
        ));
    }
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}`: {num} is not a whole number"))?;
    let secs_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; use s, m, h or d (60s, 15m, 4h, 7d)"
            ))
        }
    };
    n.checked_mul(secs_per_unit)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses a point in time: RFC 3339 (`2026-11-28T16:00:00Z`) or an age before `now`
/// (`7d`, `12h`, `30m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    match parse_duration(s) {
        Ok(age) => Ok(now - age),
        Err(_) => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-11-28T16:00:00Z) nor an age (7d, 12h, 30m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations() {
        let table = [
            ("60s", Some(60)),
            ("15m", Some(900)),
            ("4h", Some(14_400)),
            ("7d", Some(604_800)),
            ("4", None),
            ("h", None),
            ("4w", None),
            ("-4h", None),
            ("", None),
            ("99999999999999999999d", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_duration(input).ok().map(|d| d.num_seconds()),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn times() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time("12h", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2025, 12, 31, 23, 0, 0).unwrap()
        );
        assert!(parse_time("yesterday", now).is_err());
    }
}
