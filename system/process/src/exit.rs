//! How every binary ends: success, or one line `<binary>: <reason>` on stderr and exit code 1.

use std::fmt::Display;
use std::process::ExitCode;

/// The exit of `binary` after `outcome`: success, or the reason printed as one line on stderr
/// and a failing exit code.
pub fn exit_with(binary: &str, outcome: Result<(), impl Display>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{binary}: {reason}");
            ExitCode::FAILURE
        }
    }
}
