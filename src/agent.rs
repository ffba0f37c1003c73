//! `zoho-device agent` (issue 8, being built).

use crate::app::Context;
use crate::cli::AgentArgs;
use crate::exit::AppError;

/// Runs the agent.
pub async fn run(_ctx: Context, _args: AgentArgs) -> Result<(), AppError> {
    Err(AppError::usage("the agent is not built yet"))
}
