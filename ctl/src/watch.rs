// `--watch [SECONDS]`: run a command's view again and again until Ctrl-C,
// as watch(1) does. On a terminal each snapshot replaces the last (screen
// cleared, a header with the interval and the time); piped, snapshots
// follow each other separated by a blank line (YAML ones each start a
// `---` document), so `podctl bgp peers -o json --watch | jq` reads a stream.
// A failed snapshot (a daemon restarting) is shown and the watch goes on.
// Any command can use it: `Watch::run` takes a closure that renders one
// snapshot.

use std::io::{self, Write};
use std::time::Duration;

use crate::human::{Style, Tone, utc_timestamp};
use crate::output::Output;

/// The `--watch` flag; commands flatten it in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WatchArgs {
    /// Redraw every SECONDS (2 when given alone) until Ctrl-C; piped, each
    /// snapshot follows the last after a blank line.
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "2",
        value_parser = parse_interval
    )]
    pub watch: Option<Duration>,
}

/// The shortest interval accepted: faster only loads the daemon.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Clears a terminal and moves the cursor home (ECMA-48 ED and CUP).
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// How snapshots are shown.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The command, for the header: "podctl bgp peers".
    pub title: String,
    pub interval: Duration,
    /// Standard output is a terminal: redraw in place.
    pub terminal: bool,
    pub output: Output,
    pub style: Style,
}

impl Watch {
    /// Shows a snapshot from `snapshot` every interval on standard output
    /// until Ctrl-C (or until standard output is closed). Errors from
    /// `snapshot` are shown and the watch goes on.
    pub async fn run<F, Fut>(&self, snapshot: F) -> io::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<String>>,
    {
        let stop = async {
            // Without a handler, Ctrl-C still ends podctl; only the exit
            // status differs.
            let _ = tokio::signal::ctrl_c().await;
        };
        let shown = self
            .run_on(&mut io::stdout(), &mut io::stderr(), stop, snapshot)
            .await;
        if self.terminal {
            // Leave the prompt on a fresh line below the last snapshot.
            let _ = writeln!(io::stdout());
        }
        shown.map(|_| ())
    }

    /// `run` with its outputs and its end given: returns how many
    /// snapshots were taken.
    pub async fn run_on<F, Fut, S>(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        stop: S,
        mut snapshot: F,
    ) -> io::Result<u64>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<String>>,
        S: Future<Output = ()>,
    {
        let mut ticks = tokio::time::interval(self.interval);
        // A slow snapshot delays the next one rather than bunching them.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        let mut taken = 0u64;
        // Whether a snapshot is on stdout yet: the next is set apart.
        let mut printed = false;
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = ticks.tick() => {}
            }
            // A snapshot that is ready is shown even if Ctrl-C came too.
            let result = tokio::select! {
                biased;
                result = snapshot() => result,
                () = &mut stop => break,
            };
            let shown = self.show(out, err, &mut printed, result);
            taken += 1;
            match shown {
                // A reader that went away (`| head`) ends the watch.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                other => other?,
            }
        }
        Ok(taken)
    }

    /// Writes a snapshot or its error; `printed` says whether one is on
    /// standard output already.
    fn show(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        printed: &mut bool,
        result: anyhow::Result<String>,
    ) -> io::Result<()> {
        if self.terminal {
            let body = match result {
                Ok(text) => text,
                Err(e) => format!(
                    "{}\n",
                    self.style.paint(&format!("podctl: {e:#}"), Tone::Bad)
                ),
            };
            let now = crate::human::now_unix_ms() / 1000;
            out.write_all(self.frame(&body, now).as_bytes())?;
            return out.flush();
        }
        match result {
            Ok(text) => {
                let mut piece = String::new();
                if *printed {
                    piece.push('\n');
                }
                *printed = true;
                if self.output == Output::Yaml {
                    piece.push_str("---\n");
                }
                piece.push_str(&text);
                out.write_all(piece.as_bytes())?;
                out.flush()
            }
            // Errors go to stderr, so stdout stays a stream of documents.
            Err(e) => {
                writeln!(err, "podctl: {e:#}")?;
                err.flush()
            }
        }
    }

    /// A terminal frame: clear, the header, a blank line, the snapshot.
    pub fn frame(&self, body: &str, now_unix_seconds: u64) -> String {
        format!(
            "{CLEAR_SCREEN}Every {}: {}    {}\n\n{body}",
            interval_text(self.interval),
            self.title,
            utc_timestamp(now_unix_seconds)
        )
    }
}

/// "2s", "0.5s".
fn interval_text(interval: Duration) -> String {
    let seconds = interval.as_secs_f64();
    format!("{seconds}s")
}

/// SECONDS: a positive number, fractions allowed, at least 0.1.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    let interval = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "{text:?}: the interval is at least {}s",
            MIN_INTERVAL.as_secs_f64()
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn watch(terminal: bool, output: Output) -> Watch {
        Watch {
            title: "podctl bgp peers".into(),
            interval: Duration::from_millis(100),
            terminal,
            output,
            style: Style::PLAIN,
        }
    }

    /// Takes snapshots from `script` (Ok text or Err message) until it
    /// runs out; returns (stdout, stderr, snapshots taken).
    async fn run(w: &Watch, script: &[Result<&str, &str>]) -> (String, String, u64) {
        let script: Vec<Result<String, String>> = script
            .iter()
            .map(|r| r.map(str::to_owned).map_err(str::to_owned))
            .collect();
        let count = script.len() as u64;
        let next = Arc::new(AtomicU64::new(0));
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let taken = {
            let next = next.clone();
            let stop = async move {
                let mut done = done_rx;
                let _ = done.wait_for(|d| *d).await;
            };
            w.run_on(&mut out, &mut err, stop, move || {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let item = script[i as usize].clone();
                if i + 1 == count {
                    let _ = done_tx.send(true);
                }
                async move { item.map_err(|m| anyhow::anyhow!(m)) }
            })
            .await
            .unwrap()
        };
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            taken,
        )
    }

    #[tokio::test]
    async fn piped_snapshots_are_separated_by_a_blank_line_and_errors_go_to_stderr() {
        let (out, err, taken) = run(
            &watch(false, Output::Json),
            &[
                Ok("{\"a\": 1}\n"),
                Err("is podroute-bgpd running?"),
                Ok("{\"a\": 2}\n"),
            ],
        )
        .await;
        assert_eq!(taken, 3);
        assert_eq!(out, "{\"a\": 1}\n\n{\"a\": 2}\n");
        assert_eq!(err, "podctl: is podroute-bgpd running?\n");
        // A stream of JSON documents.
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[tokio::test]
    async fn piped_yaml_snapshots_are_documents() {
        let (out, _, _) = run(&watch(false, Output::Yaml), &[Ok("a: 1\n"), Ok("a: 2\n")]).await;
        assert_eq!(out, "---\na: 1\n\n---\na: 2\n");
    }

    #[tokio::test]
    async fn a_terminal_gets_frames_with_errors_in_them() {
        let (out, err, _) = run(
            &watch(true, Output::Table),
            &[Ok("PEER\n"), Err("socket gone")],
        )
        .await;
        assert!(err.is_empty());
        let frames: Vec<&str> = out.split(CLEAR_SCREEN).skip(1).collect();
        assert_eq!(frames.len(), 2, "{out:?}");
        assert!(
            frames[0].starts_with("Every 0.1s: podctl bgp peers    "),
            "{out:?}"
        );
        assert!(frames[0].ends_with(" UTC\n\nPEER\n"), "{out:?}");
        assert!(frames[1].ends_with("\n\npodctl: socket gone\n"), "{out:?}");
    }

    #[test]
    fn frames_show_the_time() {
        let w = Watch {
            interval: Duration::from_secs(2),
            ..watch(true, Output::Table)
        };
        assert_eq!(
            w.frame("x\n", 1_700_000_000),
            "\x1b[H\x1b[2JEvery 2s: podctl bgp peers    2023-11-14 22:13:20 UTC\n\nx\n"
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("soon").is_err());
        assert_eq!(interval_text(Duration::from_millis(500)), "0.5s");
    }
}
