//! `qserv`: the operator's command line. It talks only to the coordinator.

mod client;
mod exit;
mod status;
mod table;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use qserv_proto::v1::VersionRequest;

use crate::exit::{CliError, Exit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "qserv",
    version,
    about = "Operate a Qserv instance through its coordinator"
)]
struct Cli {
    /// Coordinator address.
    #[arg(
        long,
        global = true,
        env = "QSERV_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    coordinator: String,
    /// Output format.
    #[arg(
        short,
        long,
        global = true,
        env = "QSERV_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the instance's mode, health and every node.
    Status {
        /// Keep showing the status as it changes.
        #[arg(long)]
        watch: bool,
    },
    /// Show the versions of this CLI and of the coordinator.
    Version,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.output;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qserv: {}", err.message);
            if output == Output::Json {
                let doc =
                    serde_json::json!({"error": {"code": err.exit.code(), "message": err.message}});
                println!("{doc}");
            }
            ExitCode::from(err.exit.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Status { watch } => status::run(&cli.coordinator, cli.output, watch).await,
        Command::Version => version(&cli.coordinator, cli.output).await,
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "qserv", &mut out);
            out.flush()
                .map_err(|e| CliError::new(Exit::Other, format!("cannot write to stdout: {e}")))
        }
    }
}

/// Prints both versions; an unreachable coordinator is reported but not an error, so `version`
/// works on a machine that only has the CLI.
async fn version(coordinator: &str, output: Output) -> Result<(), CliError> {
    let server = match client::connect(coordinator).await {
        Ok(mut client) => client
            .get_version(VersionRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| exit::from_status(&s, coordinator)),
        Err(err) => Err(err),
    };
    match output {
        Output::Json => {
            let coordinator_json = match &server {
                Ok(v) => {
                    serde_json::json!({"address": coordinator, "version": v.version, "protocol_version": v.protocol_version})
                }
                Err(err) => serde_json::json!({"address": coordinator, "error": err.message}),
            };
            println!(
                "{}",
                serde_json::json!({
                    "client": {"version": qserv_proto::VERSION, "protocol_version": qserv_proto::PROTOCOL_VERSION},
                    "coordinator": coordinator_json,
                })
            );
        }
        Output::Table => {
            println!(
                "qserv {} (protocol {})",
                qserv_proto::VERSION,
                qserv_proto::PROTOCOL_VERSION
            );
            match &server {
                Ok(v) => println!(
                    "coordinator {} (protocol {}) at {coordinator}",
                    v.version, v.protocol_version
                ),
                Err(err) => println!("coordinator: {}", err.message),
            }
        }
    }
    Ok(())
}
