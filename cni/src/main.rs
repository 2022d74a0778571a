// podroute-cni's entry point: hands the environment and stdin to the library's
// dispatcher, prints its answer on stdout, and exits 0 on success, 1 after a
// CNI error result (CNI spec 1.1, "Error").

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = podroute_cni::run(
        &|name| std::env::var(name).ok(),
        &mut std::io::stdin().lock(),
    );
    let mut stdout = std::io::stdout().lock();
    let written = if outcome.stdout.is_empty() {
        Ok(())
    } else {
        writeln!(stdout, "{}", outcome.stdout).and_then(|()| stdout.flush())
    };
    if outcome.success && written.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
