//! The stand-in for the gateway in builds without the `gateway` feature (board builds, unless
//! built with `--features gateway`): asking for `--serve` is a configuration error that says so.

use crate::cli::AgentArgs;
use crate::exit::AppError;
use crate::settings::Settings;

/// Nothing runs in this build.
pub struct Running;

/// `Ok(None)` when nothing is to be served; an error naming the feature otherwise.
pub async fn start(settings: &Settings, args: &AgentArgs) -> Result<Option<Running>, AppError> {
    if args.serve.is_empty() && settings.serve.serve.is_empty() {
        return Ok(None);
    }
    Err(
        AppError::usage("this zoho-device was built without the Books gateway (--serve, config key serve)")
            .hint("build it with `--features gateway` (board builds leave it out for size), or remove --serve"),
    )
}
