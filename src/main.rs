//! crimg: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

use crimg::app::{self, Outcome};
use crimg::archive::output::excuses_broken_pipe;
use crimg::cli::Cli;
use crimg::error::{exit, report};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with code 0, usage errors with 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crimg: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED as u8);
        }
    };
    let code = match runtime.block_on(app::run(cli)) {
        Ok(Outcome::Done) => exit::OK,
        Ok(Outcome::Partial) => exit::PARTIAL,
        Err(err) if is_broken_pipe(&err) => exit::OK,
        Err(err) => {
            let (message, code) = report(&err);
            eprintln!("crimg: error: {message}");
            code
        }
    };
    ExitCode::from(code as u8)
}

/// A report piped into `head` is no failure. An archive cut short is (see
/// `WritingArchive`), and a broken pipe under a gRPC status is a lost connection to the
/// runtime, which is too.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    excuses_broken_pipe(err)
        && err
            .chain()
            .take_while(|e| !e.is::<tonic::Status>())
            .any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            })
}
