// Runs the kernel tools the applier drives (iptables-save/-restore, ipset,
// conntrack), on the host or inside a named network namespace through
// `ip netns exec`, feeding a script on stdin and keeping stdout and stderr so
// that every failure names the command, its exit status and what it said.

use std::io::{self, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Where commands run: the host's (the agent's own) network namespace, or a
/// named one (tests, the bench).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runner {
    /// Run as `ip netns exec NAME PROGRAM ARGS...` when set.
    pub netns: Option<String>,
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// How long one tool may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{command}` did not finish within {after:?} and was killed")]
    TimedOut { command: String, after: Duration },

    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot feed its input to `{command}`: {source}")]
    Stdin {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "`{command}` failed ({status}): {stderr}{}",
        input_line.as_deref().map(|l| format!(" [input line: {l}]")).unwrap_or_default()
    )]
    Failed {
        command: String,
        status: String,
        stderr: String,
        /// The line of the input script the tool's message points at
        /// (`line N`), when it names one: the tools print only the number.
        input_line: Option<String>,
    },
}

impl Runner {
    /// Commands run in this process's own network namespace.
    pub fn host() -> Runner {
        Runner { netns: None }
    }

    /// Commands run inside network namespace `name`.
    pub fn in_netns(name: impl Into<String>) -> Runner {
        Runner {
            netns: Some(name.into()),
        }
    }

    /// Runs `program args...` with `stdin` as its input and fails unless it
    /// exits 0.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, RunError> {
        let out = self.output(program, args, stdin)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(program, args, stdin, &out))
        }
    }

    /// Runs `program args...` and returns what it printed whatever its exit
    /// status: for tools whose non-zero exit can mean success (conntrack).
    pub fn output(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CommandOutput, RunError> {
        let mut cmd = self.command(program, args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            command: self.show(program, args),
            source,
        })?;
        let input = child.stdin.take();
        let pid = child.id().to_string();
        let timed_out = AtomicBool::new(false);
        let (finished, finishing) = mpsc::channel::<()>();
        // Feed stdin from another thread while this one drains stdout and
        // stderr: a large script and a chatty tool would otherwise block
        // each other on full pipes. A third kills a tool that hangs, so the
        // agent's loop never waits forever.
        let (written, waited) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || match (input, stdin) {
                (Some(mut pipe), Some(text)) => pipe.write_all(text.as_bytes()),
                _ => Ok(()),
            });
            let timed_out = &timed_out;
            scope.spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = finishing.recv_timeout(COMMAND_TIMEOUT) {
                    timed_out.store(true, Ordering::Relaxed);
                    let _ = Command::new("kill").args(["-KILL", &pid]).status();
                }
            });
            let waited = child.wait_with_output();
            let _ = finished.send(());
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("stdin writer panicked")));
            (written, waited)
        });
        let out = waited.map_err(|source| RunError::Spawn {
            command: self.show(program, args),
            source,
        })?;
        if timed_out.load(Ordering::Relaxed) {
            return Err(RunError::TimedOut {
                command: self.show(program, args),
                after: COMMAND_TIMEOUT,
            });
        }
        let out = CommandOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // A tool that exits 0 without having read all of its script has not
        // done what was asked; one that failed says why in its stderr.
        if let Err(source) = written
            && out.status.success()
        {
            return Err(RunError::Stdin {
                command: self.show(program, args),
                source,
            });
        }
        Ok(out)
    }

    /// The error for a command that exited non-zero.
    pub fn failed(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
        out: &CommandOutput,
    ) -> RunError {
        RunError::Failed {
            command: self.show(program, args),
            status: out.status.to_string(),
            stderr: out.stderr.trim().to_string(),
            input_line: stdin.and_then(|s| named_input_line(&out.stderr, s)),
        }
    }

    /// The command as a person would type it, for messages.
    pub fn show(&self, program: &str, args: &[&str]) -> String {
        let mut words: Vec<&str> = Vec::with_capacity(args.len() + 4);
        if let Some(ns) = &self.netns {
            words.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        words.push(program);
        words.extend_from_slice(args);
        words
            .iter()
            .map(|w| {
                if w.is_empty() || w.contains(char::is_whitespace) {
                    format!("'{w}'")
                } else {
                    (*w).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.as_str(), program]);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args);
        // We read the tools' messages (conntrack's count); keep them in
        // English whatever the node's locale.
        cmd.env("LC_ALL", "C");
        cmd
    }
}

/// The input line a tool's error points at: iptables-restore says
/// `line 3 failed`, ipset `Error in line 3:`; lines count from 1.
fn named_input_line(stderr: &str, input: &str) -> Option<String> {
    let at = stderr.find("line ")?;
    let digits: String = stderr[at + "line ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n: usize = digits.parse().ok()?;
    input
        .lines()
        .nth(n.checked_sub(1)?)
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_prefixes_the_netns_and_quotes_spaces() {
        let r = Runner::in_netns("pa1-0");
        assert_eq!(
            r.show("iptables-restore", &["-w", "10", "a b"]),
            "ip netns exec pa1-0 iptables-restore -w 10 'a b'"
        );
        assert_eq!(Runner::host().show("ipset", &["save"]), "ipset save");
    }

    #[test]
    fn the_input_line_named_by_the_tool_is_found() {
        let script = "*filter\n:PODROUTE-A - [0:0]\n-A PODROUTE-A -j NOPE\nCOMMIT\n";
        assert_eq!(
            named_input_line("iptables-restore: line 3 failed: No chain/target", script),
            Some("-A PODROUTE-A -j NOPE".to_string())
        );
        assert_eq!(
            named_input_line(
                "ipset v7.17: Error in line 1: The set with the given name does not exist",
                "destroy x\n"
            ),
            Some("destroy x".to_string())
        );
        assert_eq!(named_input_line("line 9 failed", script), None);
        assert_eq!(named_input_line("line 0 failed", script), None);
        assert_eq!(named_input_line("no number", script), None);
    }

    #[test]
    fn a_failing_command_names_command_status_and_stderr() {
        let err = Runner::host()
            .run(
                "sh",
                &["-c", "cat >/dev/null; echo 'line 2 bad' >&2; exit 3"],
                Some("one\ntwo\n"),
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("line 2 bad"), "{text}");
        assert!(text.contains("[input line: two]"), "{text}");
    }

    #[test]
    fn stdin_reaches_the_program_and_stdout_comes_back() {
        // Bigger than a pipe buffer, to prove writing and reading overlap.
        let input = "x".repeat(1 << 20);
        let out = Runner::host().run("cat", &[], Some(&input)).unwrap();
        assert_eq!(out.stdout.len(), input.len());
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = Runner::host()
            .run("podroute-no-such-program", &[], None)
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    }
}
