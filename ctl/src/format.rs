// Small text formats shared by podctl's commands: compact durations
// ("3h12m", as `gobgp neighbor` prints uptimes) and the current time as
// Unix milliseconds, the unit the daemons' APIs use for instants.

use std::time::{SystemTime, UNIX_EPOCH};

/// 93784 → "1d2h3m"; seconds only under an hour, as `gobgp neighbor` does.
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (d, h) {
        (0, 0) if m == 0 => format!("{s}s"),
        (0, 0) => format!("{m}m{s}s"),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h{m}m"),
    }
}

/// Now as Unix milliseconds (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m1s");
        assert_eq!(duration(3_600), "1h0m");
        assert_eq!(duration(11_520), "3h12m");
        assert_eq!(duration(93_784), "1d2h3m");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_unix_ms() > 1_577_836_800_000);
    }
}
