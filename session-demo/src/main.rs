//! `session-demo`: see the crate README, or `session-demo --help`.

use std::process::ExitCode;

use session_demo::{Options, Server};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse_args(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(error) => error.exit(),
    };
    let server = match Server::start(&options).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("session-demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "session-demo: {} backend, listening on {} (Ctrl-C to stop)",
        options.backend.name(),
        server.url()
    );
    match server.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-demo: {error}");
            ExitCode::FAILURE
        }
    }
}
