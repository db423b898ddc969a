//! Exit codes (DESIGN §4; 0 is success) and the error type that carries one.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Other = 1,
    Usage = 2,
    Refused = 3,
    JobFailed = 4,
    Unreachable = 5,
    TimedOut = 6,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure of a command: what to tell the operator and how to exit.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    /// The output already tells this failure (`-o json` prints no second document).
    pub in_output: bool,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            in_output: false,
        }
    }

    /// A failure the printed output already shows, such as an instance that did not answer.
    pub fn shown(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            in_output: true,
            ..CliError::new(exit, message)
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Maps a gRPC status from the coordinator to an exit code.
pub fn from_status(status: &tonic::Status, coordinator: &str) -> CliError {
    use tonic::Code;
    let detail = qserv_proto::transport::describe_status(status);
    // The connection failed under the call (a broken pipe, a reset, a keep-alive that timed
    // out): whatever code tonic gave it, the coordinator is not reachable.
    if !qserv_proto::transport::answered(status) {
        return unreachable(coordinator, &detail);
    }
    match status.code() {
        // A coordinator answered, but none leads: the change has nobody to take it.
        Code::Unavailable if qserv_proto::transport::is_between_leaders(status) => CliError::new(
            Exit::Unreachable,
            format!("no coordinator at {coordinator} leads the instance now: {detail}"),
        ),
        Code::Unavailable => unreachable(coordinator, &detail),
        Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::InvalidArgument
        | Code::PermissionDenied
        | Code::Unauthenticated => CliError::new(Exit::Refused, detail),
        Code::DeadlineExceeded => CliError::new(Exit::TimedOut, detail),
        Code::NotFound => CliError::new(Exit::Other, detail),
        _ => CliError::new(Exit::Other, detail),
    }
}

pub fn unreachable(coordinator: &str, cause: &str) -> CliError {
    CliError::new(
        Exit::Unreachable,
        format!(
            "cannot reach the coordinator at {coordinator}: {cause}; check that qserv-coordinator \
             runs there, or point --coordinator (or QSERV_COORDINATOR) at it"
        ),
    )
}
