// Small text formats shared by podctl's commands: compact durations
// ("3h12m", as `gobgp neighbor` prints uptimes).

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
}
