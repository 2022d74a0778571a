// Waiting for the signals that end a podroute daemon (SIGTERM from systemd or
// the kubelet, SIGINT from a terminal), shared so every daemon stops the same
// way: stop serving, remove its admin socket, exit 0.

use std::io;

use tokio::signal::unix::{SignalKind, signal};

/// The signal that asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

/// Installs SIGTERM and SIGINT handlers now and returns a future resolving
/// at the first of them. Installing up front (rather than inside the future)
/// means a signal arriving before the future is first polled is not lost.
pub fn stop_signal() -> io::Result<impl Future<Output = StopSignal>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => StopSignal::Terminate,
            _ = int.recv() => StopSignal::Interrupt,
        }
    })
}
