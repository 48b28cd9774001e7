//! The `ingestor` binary: parse, set up logging, run, map the outcome to an exit status
//! (0 success, 3 a file FAILED, 1 fatal error, 2 usage error).

use std::process::ExitCode;

use clap::Parser;
use ingestor::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    // PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping` on every
    // start) are noise at the default level; RUST_LOG=sqlx::postgres::notice=info shows them.
    let mut directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    if !directives.contains("sqlx::postgres::notice") {
        directives.push_str(",sqlx::postgres::notice=warn");
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ingestor::progress::LogWriter::default)
        // No colours: the writer escapes every control character of a line.
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(ingestor::app::run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(error) => {
            let message = ingestor::text::error_chain(&error);
            eprintln!("error: {}", ingestor::text::printable(&message));
            ExitCode::from(1)
        }
    }
}
