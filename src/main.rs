//! The `chaoscast` command-line tool: a thin layer of flags over the library.

mod cli;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: training allocates and frees many short-lived
/// tensors per step, and glibc's malloc hands large blocks back to the kernel each time (measured:
/// 40 % of a training epoch was system time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `chaoscast … | head` would panic on the next print once head has
    // gone; end quietly instead, with the status a shell reports for SIGPIPE (128 + 13).
    // SAFETY: the handler only calls `_exit`, which is async-signal-safe.
    let _ = unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGPIPE, || {
            signal_hook::low_level::exit(141)
        })
    };
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        // Stopped by a signal after a checkpoint: exit code 3, so a job script can requeue.
        Err(err)
            if matches!(
                err.downcast_ref(),
                Some(chaoscast::Error::Interrupted { .. })
            ) =>
        {
            eprintln!("stopped: {err:#}");
            ExitCode::from(3)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
