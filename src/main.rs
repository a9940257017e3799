//! crimg: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use crimg::app;
use crimg::cli::Cli;
use crimg::exit::{self, ExitStatus};

fn main() -> ExitCode {
    // `CRIMG_COMPLETE=<shell> crimg -- WORDS` is a completion request: answered, then exit.
    crimg::complete::answer_if_asked();
    let cli = match Cli::from_args() {
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
            exit::print_error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::from(ExitStatus::Failed.code());
        }
    };
    ExitCode::from(exit::finish(runtime.block_on(app::run(cli))).code())
}
