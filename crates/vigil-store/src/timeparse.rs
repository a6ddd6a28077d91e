//! Times on the command line: RFC 3339 (`2026-11-20T09:00:00Z`), a day (`2026-11-20`), or a
//! duration before now (`90s`, `15m`, `24h`, `7d`, `2w`).

/// A duration as written in configuration and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub micros: i64,
    pub text: String,
}

impl Span {
    pub fn as_micros(&self) -> i64 {
        self.micros
    }
}

pub fn parse_span(s: &str) -> Option<Span> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    if n < 0 {
        return None;
    }
    let secs: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'y' => 365 * 86_400,
        _ => return None,
    };
    Some(Span {
        micros: n.checked_mul(secs)?.checked_mul(1_000_000)?,
        text: s.to_string(),
    })
}

/// A point in time, microseconds since the epoch; relative forms count back from `now`.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    if let Some(t) = crate::query::time_value(s) {
        return Ok(t);
    }
    if let Some(span) = parse_span(s) {
        return Ok(now - span.micros);
    }
    Err(format!(
        "{s:?}: expected an RFC 3339 time (2026-11-20T09:00:00Z), a day (2026-11-20) or a duration back from now (24h, 7d)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let now = 1_000_000_000_000_000;
        assert_eq!(parse_time("24h", now), Ok(now - 86_400_000_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000_000));
        assert_eq!(
            parse_time("2026-11-20T09:00:00Z", now),
            Ok(1_795_165_200_000_000)
        );
        assert_eq!(parse_time("2026-11-20", now), Ok(1_795_132_800_000_000));
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-5d", now).is_err());
        assert_eq!(parse_span("400d").unwrap().micros, 400 * 86_400_000_000);
    }
}
