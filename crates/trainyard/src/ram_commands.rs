//! `trainyard users ...`, `trainyard keys ...` and `trainyard policies ...`: RAM management of a
//! running server through its admin API (docs/ram.md), signed like any other call — so they work
//! with the root key, or with the key of a user granted the `ram:*` actions they use.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::client::{Client, ClientArgs, encode_segment};

const USERS: &str = "/v4/openapi/ram/users";
const POLICIES: &str = "/v4/openapi/ram/policies";

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Create a RAM user.
    Create {
        /// 1-64 characters: letters, digits, '.', '_', '@', '-'.
        user: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        comments: Option<String>,
    },
    /// List the RAM users.
    List,
    /// Show one user.
    Get { user: String },
    /// Delete a user with its AccessKeys and policy attachments.
    Delete { user: String },
}

/// Whose keys: a RAM user (`--user NAME`) or the root account (`--root`: its keys in the store,
/// besides the bootstrap key; only the root account may manage them).
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct KeyOwner {
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    root: bool,
}

impl KeyOwner {
    fn describe(&self) -> String {
        match &self.user {
            Some(user) => format!("--user {user}"),
            None => "--root".to_string(),
        }
    }

    /// The keys collection's path, and the operation name for `verb` (`Create`, `List`, ...):
    /// `{verb}AccessKey` for a user, `{verb}RootAccessKey` for the root (plural for List).
    fn route(&self, verb: &str) -> (String, String) {
        let plural = if verb == "List" { "s" } else { "" };
        match &self.user {
            Some(user) => (format!("{}/access-keys", user_path(user)), format!("{verb}AccessKey{plural}")),
            None => ("/v4/openapi/ram/root/access-keys".to_string(), format!("{verb}RootAccessKey{plural}")),
        }
    }

    fn key_route(&self, verb: &str, access_key_id: &str) -> (String, String) {
        let (collection, action) = self.route(verb);
        (format!("{collection}/{}", encode_segment(access_key_id)), action)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create an AccessKey; the secret is printed once.
    Create {
        #[command(flatten)]
        owner: KeyOwner,
    },
    /// List AccessKeys (no secrets), with failed-signature counts.
    List {
        #[command(flatten)]
        owner: KeyOwner,
    },
    /// Stop a key from signing requests (InvalidAccessKeyId.Inactive) without deleting it.
    Disable {
        #[command(flatten)]
        owner: KeyOwner,
        access_key_id: String,
    },
    /// Let a disabled key sign requests again.
    Enable {
        #[command(flatten)]
        owner: KeyOwner,
        access_key_id: String,
    },
    /// Delete a key for good.
    Delete {
        #[command(flatten)]
        owner: KeyOwner,
        access_key_id: String,
    },
    /// Rotate: create a new key now (the old one keeps working); move callers to it, then
    /// `trainyard keys delete` the old one.
    Rotate {
        #[command(flatten)]
        owner: KeyOwner,
        /// The key being replaced (checked to exist; left active).
        access_key_id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum PoliciesCommand {
    /// Create a policy from a RAM JSON document (refused, naming the problem, when malformed).
    Create {
        name: String,
        /// File with the policy document, or - for standard input.
        #[arg(long)]
        document: PathBuf,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the policies.
    List,
    /// Show one policy with its document.
    Get { name: String },
    /// Delete a policy (refused while it is attached).
    Delete { name: String },
    /// Attach a policy to a user.
    Attach {
        name: String,
        #[arg(long)]
        user: String,
    },
    /// Detach a policy from a user.
    Detach {
        name: String,
        #[arg(long)]
        user: String,
    },
    /// List the policies attached to a user.
    ListForUser {
        #[arg(long)]
        user: String,
    },
    /// Say whether a user may do an action on a resource, and which statement decided.
    Simulate {
        #[arg(long)]
        user: String,
        /// E.g. opensearch:WriteFunction.
        #[arg(long)]
        action: String,
        /// E.g. acs:opensearch:cn-hangzhou:root:apps/my_app.
        #[arg(long)]
        resource: String,
        /// acs:SourceIp to simulate (default: absent).
        #[arg(long)]
        source_ip: Option<String>,
        /// Simulate acs:SecureTransport = true.
        #[arg(long)]
        secure_transport: bool,
        /// acs:CurrentTime to simulate, ISO 8601 (default: now).
        #[arg(long)]
        current_time: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Args)]
pub struct PoliciesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: PoliciesCommand,
}

fn user_path(user: &str) -> String {
    format!("{USERS}/{}", encode_segment(user))
}

fn body(value: Value) -> Option<Vec<u8>> {
    Some(value.to_string().into_bytes())
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn result(answer: &Value) -> &Value {
    answer.get("Result").unwrap_or(&Value::Null)
}

fn items(answer: &Value) -> Vec<Value> {
    result(answer).as_array().cloned().unwrap_or_default()
}

pub async fn users(arguments: UsersArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    match arguments.command {
        UsersCommand::Create { user, display_name, comments } => {
            let request = json!({"userName": user, "displayName": display_name, "comments": comments});
            client.call_ok("CreateUser", "POST", USERS, body(request)).await?;
            println!("created user {user}");
        }
        UsersCommand::List => {
            let answer = client.call_ok("ListUsers", "GET", USERS, None).await?;
            for user in items(&answer) {
                println!("{}\t{}\t{}", text(&user, "UserName"), text(&user, "DisplayName"), text(&user, "CreateDate"));
            }
        }
        UsersCommand::Get { user } => {
            let answer = client.call_ok("GetUser", "GET", &user_path(&user), None).await?;
            println!("{}", serde_json::to_string_pretty(result(&answer))?);
        }
        UsersCommand::Delete { user } => {
            client.call_ok("DeleteUser", "DELETE", &user_path(&user), None).await?;
            println!("deleted user {user} with its AccessKeys and policy attachments");
        }
    }
    Ok(())
}

async fn create_key(client: &Client, owner: &KeyOwner) -> anyhow::Result<()> {
    let (path, action) = owner.route("Create");
    let answer = client.call_ok(&action, "POST", &path, None).await?;
    let created = result(&answer);
    println!("AccessKey id: {}", text(created, "AccessKeyId"));
    println!("AccessKey secret: {} (shown once: store it now)", text(created, "AccessKeySecret"));
    Ok(())
}

async fn list_keys(client: &Client, owner: &KeyOwner) -> anyhow::Result<Vec<Value>> {
    let (path, action) = owner.route("List");
    Ok(items(&client.call_ok(&action, "GET", &path, None).await?))
}

pub async fn keys(arguments: KeysArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    match arguments.command {
        KeysCommand::Create { owner } => create_key(&client, &owner).await?,
        KeysCommand::List { owner } => {
            for key in list_keys(&client, &owner).await? {
                println!(
                    "{}\t{}\tcreated {}\tfailed signatures {}",
                    text(&key, "AccessKeyId"),
                    text(&key, "Status"),
                    text(&key, "CreateDate"),
                    key.get("FailedSignatureCount").and_then(Value::as_u64).unwrap_or(0)
                );
            }
        }
        KeysCommand::Disable { owner, access_key_id } => {
            let (path, action) = owner.key_route("Update", &access_key_id);
            client.call_ok(&action, "PUT", &path, body(json!({"status": "Inactive"}))).await?;
            println!("disabled {access_key_id}");
        }
        KeysCommand::Enable { owner, access_key_id } => {
            let (path, action) = owner.key_route("Update", &access_key_id);
            client.call_ok(&action, "PUT", &path, body(json!({"status": "Active"}))).await?;
            println!("enabled {access_key_id}");
        }
        KeysCommand::Delete { owner, access_key_id } => {
            let (path, action) = owner.key_route("Delete", &access_key_id);
            client.call_ok(&action, "DELETE", &path, None).await?;
            println!("deleted {access_key_id}");
        }
        KeysCommand::Rotate { owner, access_key_id } => {
            let exists = list_keys(&client, &owner).await?.iter().any(|key| text(key, "AccessKeyId") == access_key_id);
            anyhow::ensure!(exists, "{} has no AccessKey {access_key_id}", owner.describe());
            create_key(&client, &owner).await?;
            println!(
                "{access_key_id} still works: move callers to the new key, then run `trainyard keys delete {} {access_key_id}`",
                owner.describe()
            );
        }
    }
    Ok(())
}

fn read_document(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut document = String::new();
        std::io::stdin().read_to_string(&mut document).context("reading the policy document from standard input")?;
        return Ok(document);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub async fn policies(arguments: PoliciesArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    match arguments.command {
        PoliciesCommand::Create { name, document, description } => {
            let document = read_document(&document)?;
            let request = json!({"policyName": name, "policyDocument": document, "description": description});
            client.call_ok("CreatePolicy", "POST", POLICIES, body(request)).await?;
            println!("created policy {name}");
        }
        PoliciesCommand::List => {
            let answer = client.call_ok("ListPolicies", "GET", POLICIES, None).await?;
            for policy in items(&answer) {
                println!("{}\t{}", text(&policy, "PolicyName"), text(&policy, "Description"));
            }
        }
        PoliciesCommand::Get { name } => {
            let path = format!("{POLICIES}/{}", encode_segment(&name));
            let answer = client.call_ok("GetPolicy", "GET", &path, None).await?;
            let policy = result(&answer);
            println!("{}", text(policy, "PolicyName"));
            let document: Value = serde_json::from_str(text(policy, "PolicyDocument")).unwrap_or(Value::Null);
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        PoliciesCommand::Delete { name } => {
            let path = format!("{POLICIES}/{}", encode_segment(&name));
            client.call_ok("DeletePolicy", "DELETE", &path, None).await?;
            println!("deleted policy {name}");
        }
        PoliciesCommand::Attach { name, user } => {
            let path = format!("{}/policies/{}", user_path(&user), encode_segment(&name));
            client.call_ok("AttachPolicyToUser", "POST", &path, None).await?;
            println!("attached {name} to {user}");
        }
        PoliciesCommand::Detach { name, user } => {
            let path = format!("{}/policies/{}", user_path(&user), encode_segment(&name));
            client.call_ok("DetachPolicyFromUser", "DELETE", &path, None).await?;
            println!("detached {name} from {user}");
        }
        PoliciesCommand::ListForUser { user } => {
            let path = format!("{}/policies", user_path(&user));
            let answer = client.call_ok("ListPoliciesForUser", "GET", &path, None).await?;
            for policy in items(&answer) {
                println!("{}", text(&policy, "PolicyName"));
            }
        }
        PoliciesCommand::Simulate { user, action, resource, source_ip, secure_transport, current_time } => {
            let path = format!("{}/actions/simulate", user_path(&user));
            let request = json!({
                "action": action,
                "resource": resource,
                "sourceIp": source_ip,
                "secureTransport": secure_transport,
                "currentTime": current_time,
            });
            let answer = client.call_ok("SimulatePrincipalPolicy", "POST", &path, body(request)).await?;
            println!("{}", describe_simulation(&user, result(&answer)));
        }
    }
    Ok(())
}

/// One line: allowed or denied, and by which statement.
fn describe_simulation(user: &str, simulation: &Value) -> String {
    let action = text(simulation, "Action");
    let resource = text(simulation, "Resource");
    let statement = match (
        simulation.get("MatchedPolicyName").and_then(Value::as_str),
        simulation.get("MatchedStatementIndex").and_then(Value::as_u64),
    ) {
        (Some(policy), Some(index)) => format!("policy {policy} Statement[{index}]"),
        _ => String::new(),
    };
    match text(simulation, "Decision") {
        "allowed" => format!("allowed: {user} may do {action} on {resource} (allowed by {statement})"),
        "explicitDeny" => format!("denied: {user} may not do {action} on {resource} (explicit deny by {statement})"),
        _ => format!("denied: {user} may not do {action} on {resource} (implicit deny: no statement allows it)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulations_name_the_deciding_statement() {
        let allowed = json!({"Action": "a:B", "Resource": "r", "Decision": "allowed", "MatchedPolicyName": "P", "MatchedStatementIndex": 2});
        assert_eq!(describe_simulation("u", &allowed), "allowed: u may do a:B on r (allowed by policy P Statement[2])");
        let denied = json!({"Action": "a:B", "Resource": "r", "Decision": "explicitDeny", "MatchedPolicyName": "D", "MatchedStatementIndex": 0});
        assert!(describe_simulation("u", &denied).ends_with("(explicit deny by policy D Statement[0])"));
        let implicit = json!({"Action": "a:B", "Resource": "r", "Decision": "implicitDeny", "MatchedPolicyName": null});
        assert!(describe_simulation("u", &implicit).contains("implicit deny"));
    }
}
