// The plugin's invocation log (`logFile` in the network configuration): one
// line per call with what was asked, how it ended and how long it took, as
// Calico's cni.log gives operators. Appending never fails the call.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::commands::Invocation;
use crate::error::CniError;

/// Appends one line for `invocation` to `path` (created with its folder).
pub fn append(
    path: &Path,
    invocation: &Invocation,
    outcome: &Result<String, CniError>,
    took: Duration,
) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pod = invocation
        .pod()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .unwrap_or_else(|| "-".to_owned());
    let result = match outcome {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error code={} msg={:?}", e.code.code(), e.msg),
    };
    let line = format!(
        "ts={}.{:03} cmd={} container={} ifname={} pod={pod} took_ms={:.1} result={result}\n",
        now.as_secs(),
        now.subsec_millis(),
        invocation.command.name(),
        if invocation.container_id.is_empty() {
            "-"
        } else {
            &invocation.container_id
        },
        if invocation.ifname.is_empty() {
            "-"
        } else {
            &invocation.ifname
        },
        took.as_secs_f64() * 1000.0,
    );
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One write of one line with O_APPEND: concurrent plugins do not
    // interleave within a line.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}
