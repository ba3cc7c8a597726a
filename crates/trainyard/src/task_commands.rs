//! `trainyard cancel`: CancelFunctionTask of a running server, for people.

use crate::client::{Client, ClientArgs, encode_segment};

#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// App group (name or id).
    #[arg(long)]
    pub app: String,
    /// Function of the instance (pop, hot, hint, ...).
    #[arg(long)]
    pub function: String,
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Generation of the task.
    #[arg(long)]
    pub generation: i64,
}

pub async fn cancel(arguments: CancelArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    let path = format!(
        "/v4/openapi/app-groups/{}/functions/{}/instances/{}/tasks/{}/actions/cancel",
        encode_segment(&arguments.app),
        encode_segment(&arguments.function),
        encode_segment(&arguments.instance),
        arguments.generation
    );
    let body = client.call_ok("CancelFunctionTask", "POST", &path, None).await?;
    let status = body["Result"]["Status"].as_str().unwrap_or("");
    let verdict = match status {
        "running" => "cancellation requested: the worker stops the trainer within seconds",
        "failed" => "the task is stopped (failed)",
        _ => "the task had already finished",
    };
    println!("generation {} of {}: {status} — {verdict}", arguments.generation, arguments.instance);
    Ok(())
}
