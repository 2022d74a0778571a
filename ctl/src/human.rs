// podctl's output for people (`-o table`): aligned tables whose columns are
// measured by what shows on screen (colour codes take no room), compact
// durations ("3h12m", "2d4h", "45s", as `gobgp neighbor` and `kubectl`
// print ages), states coloured on a terminal (green good, red bad, yellow
// on the way) and plain when piped or when NO_COLOR is set
// (https://no-color.org), and the clock for `--watch` headers.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

/// `--color`: when to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    Always,
    Never,
}

/// What a coloured word means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Working: green.
    Good,
    /// Broken or refused: red.
    Bad,
    /// On its way, or worth a look: yellow.
    Pending,
}

/// Whether table output is coloured; `paint` and `state` do nothing when
/// it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// No colour: what pipes, files and tests get.
    pub const PLAIN: Style = Style { color: false };
    /// Colour regardless of where output goes (`--color always`).
    pub const COLOR: Style = Style { color: true };

    /// The style for standard output under `choice`, looking at the
    /// terminal and the environment.
    pub fn for_stdout(choice: ColorChoice) -> Style {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Style::decide(
            choice,
            std::io::stdout().is_terminal(),
            env("NO_COLOR").is_some(),
            std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
        )
    }

    /// `--color always` wins over NO_COLOR (a command-line flag overrides
    /// the environment, as no-color.org asks); `auto` colours only a
    /// terminal that is not dumb, without NO_COLOR.
    pub fn decide(choice: ColorChoice, terminal: bool, no_color: bool, dumb: bool) -> Style {
        Style {
            color: match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal && !no_color && !dumb,
            },
        }
    }

    pub fn is_color(self) -> bool {
        self.color
    }

    /// `text` in `tone`'s colour (SGR codes), or as it is when plain.
    pub fn paint(self, text: &str, tone: Tone) -> String {
        if !self.color || text.is_empty() {
            return text.to_owned();
        }
        let code = match tone {
            Tone::Good => GREEN,
            Tone::Bad => RED,
            Tone::Pending => YELLOW,
        };
        format!("{code}{text}{RESET}")
    }

    /// A state word coloured by what it means (`state_tone`); words
    /// without a meaning stay plain.
    pub fn state(self, text: &str) -> String {
        match state_tone(text) {
            Some(tone) => self.paint(text, tone),
            None => text.to_owned(),
        }
    }
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// What a state shown by podctl means, judged by its first word and
/// ignoring case: BGP sessions (RFC 4271 §8.2.2: Established good, Idle and
/// Active bad, the steps between pending), BFD (up, down, init,
/// admin-down), policy verdicts, kernel routes, daemon reachability.
pub fn state_tone(text: &str) -> Option<Tone> {
    let word = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match word.as_str() {
        "established" | "up" | "allowed" | "ok" | "installed" => Some(Tone::Good),
        "idle" | "active" | "down" | "admin-down" | "denied" | "failed" => Some(Tone::Bad),
        "connect" | "opensent" | "openconfirm" | "init" | "pending" => Some(Tone::Pending),
        _ => None,
    }
}

/// Seconds as an operator reads an age: "45s", "12m5s", "3h12m", "2d4h";
/// the two largest units, as `kubectl` and `gobgp neighbor` print them.
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// How many columns `text` takes on a terminal: its characters, leaving
/// out ANSI escape sequences (colours).
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC '[' parameters, ended by a letter.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// Renders `headers` and `rows` as aligned lines, each ending in '\n':
/// columns padded to their widest cell by visible width, two spaces apart,
/// no trailing blanks. Cells may be coloured.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| visible_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = visible_width(cell);
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(visible_width(cell));
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Now as Unix milliseconds (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// "2025-06-01 12:00:03 UTC": a Unix time in UTC, for watch headers. UTC
/// because the local zone needs the zone database; the suffix says so.
pub fn utc_timestamp(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_date(days);
    let mut text = String::new();
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    );
    text
}

/// The proleptic Gregorian date `days` after 1970-01-01, counting in
/// 400-year eras of 146,097 days whose years start on 1 March (so the leap
/// day ends a year).
fn civil_date(days: u64) -> (u64, u64, u64) {
    const DAYS_PER_ERA: u64 = 146_097;
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / DAYS_PER_ERA;
    let day_of_era = z % DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 153 days per five months.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_the_two_largest_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(61), "1m1s");
        assert_eq!(duration(3_600), "1h0m");
        assert_eq!(duration(11_520), "3h12m");
        assert_eq!(duration(93_784), "1d2h");
        assert_eq!(duration(187_200), "2d4h");
    }

    #[test]
    fn colour_follows_the_flag_then_the_terminal_and_no_color() {
        use ColorChoice::*;
        assert!(Style::decide(Auto, true, false, false).is_color());
        assert!(!Style::decide(Auto, false, false, false).is_color());
        assert!(!Style::decide(Auto, true, true, false).is_color());
        assert!(!Style::decide(Auto, true, false, true).is_color());
        assert!(Style::decide(Always, false, true, false).is_color());
        assert!(!Style::decide(Never, true, false, false).is_color());
    }

    #[test]
    fn states_are_coloured_by_meaning() {
        let c = Style::COLOR;
        assert_eq!(c.state("Established"), "\x1b[32mEstablished\x1b[0m");
        assert_eq!(c.state("Idle"), "\x1b[31mIdle\x1b[0m");
        assert_eq!(c.state("Active"), "\x1b[31mActive\x1b[0m");
        assert_eq!(c.state("OpenSent"), "\x1b[33mOpenSent\x1b[0m");
        assert_eq!(c.state("Connect"), "\x1b[33mConnect\x1b[0m");
        assert_eq!(c.state("up 300ms x3"), "\x1b[32mup 300ms x3\x1b[0m");
        assert_eq!(c.state("init"), "\x1b[33minit\x1b[0m");
        assert_eq!(c.state("down"), "\x1b[31mdown\x1b[0m");
        assert_eq!(c.state("DENIED"), "\x1b[31mDENIED\x1b[0m");
        assert_eq!(c.state("allowed"), "\x1b[32mallowed\x1b[0m");
        assert_eq!(
            c.state("Established (GR)"),
            "\x1b[32mEstablished (GR)\x1b[0m"
        );
        assert_eq!(c.state("10.0.0.1"), "10.0.0.1");
        assert_eq!(Style::PLAIN.state("Established"), "Established");
    }

    #[test]
    fn colour_codes_take_no_width() {
        assert_eq!(visible_width("\x1b[32mEstablished\x1b[0m"), 11);
        assert_eq!(visible_width("plain"), 5);
        assert_eq!(visible_width("é"), 1);
    }

    #[test]
    fn aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec![
                "10.0.0.1".to_string(),
                "65001".to_string(),
                "Established".to_string(),
            ],
            vec![
                "fd00::1".to_string(),
                "4200000000".to_string(),
                "Idle".to_string(),
            ],
        ];
        let out = table(&["PEER", "AS", "STATE"], &rows);
        assert_eq!(
            out,
            "PEER      AS          STATE\n\
             10.0.0.1  65001       Established\n\
             fd00::1   4200000000  Idle\n"
        );
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn coloured_cells_align_like_plain_ones() {
        let c = Style::COLOR;
        let rows = vec![
            vec![c.state("Established"), "1h0m".to_string()],
            vec![c.state("Idle"), "-".to_string()],
        ];
        let coloured = table(&["STATE", "UPTIME"], &rows);
        let stripped: String = coloured
            .replace(GREEN, "")
            .replace(RED, "")
            .replace(RESET, "");
        assert_eq!(
            stripped,
            "STATE        UPTIME\nEstablished  1h0m\nIdle         -\n"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_timestamp(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_timestamp(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc_timestamp(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_unix_ms() > 1_577_836_800_000);
    }
}
