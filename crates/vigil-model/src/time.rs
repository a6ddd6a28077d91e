//! metav1.MicroTime: RFC 3339 with microseconds, always written as `2006-01-02T15:04:05.000000Z`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime(pub DateTime<Utc>);

impl MicroTime {
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(MicroTime)
    }
    pub fn unix_micros(self) -> i64 {
        self.0.timestamp_micros()
    }
    /// RFC 3339 as Vigil prints times in its own output (UTC, `Z`, fraction only when needed).
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

impl FromStr for MicroTime {
    type Err = String;
    /// Accepts any RFC 3339 time (any fraction, any offset); converts to UTC.
    fn from_str(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| MicroTime(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!(
                    "invalid time {s:?}: {e} (expected RFC 3339, e.g. 2024-05-01T12:00:00.000000Z)"
                )
            })
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_six_digits() {
        let t: MicroTime = "2024-01-02T03:04:05.123Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05.123000Z");
        let t: MicroTime = "2024-01-02T05:04:05.5+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05.500000Z");
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let e = "yesterday".parse::<MicroTime>().unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
