//! `trainyard stats` and `trainyard compact`: DescribeDatasetStats and CompactDataset of a
//! running server, for people.

use serde_json::Value;

use crate::client::{Client, ClientArgs, encode_segment};

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// App group (name or id).
    #[arg(long)]
    pub app: String,
    /// Print the raw JSON result instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// App group (name or id).
    #[arg(long)]
    pub app: String,
}

pub async fn stats(arguments: StatsArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    let path = format!("/v4/openapi/app-groups/{}/dataset-stats", encode_segment(&arguments.app));
    let body = client.call_ok("DescribeDatasetStats", "GET", &path, None).await?;
    let result = body.get("Result").cloned().unwrap_or(Value::Null);
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let number = |value: &Value, key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let time = |seconds: i64| {
        if seconds == 0 {
            "-".to_string()
        } else {
            chrono::DateTime::from_timestamp(seconds, 0)
                .map(|at| at.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default()
        }
    };
    println!("app group {}", arguments.app);
    for table in result["Tables"].as_array().into_iter().flatten() {
        println!("  documents  table {:<20} {:>12}", table["Table"].as_str().unwrap_or(""), number(table, "Documents"));
    }
    let behavior = &result["Behavior"];
    println!(
        "  behavior   {:>12} events, {} users, {} items, {} .. {}",
        number(behavior, "Events"),
        number(behavior, "DistinctUsers"),
        number(behavior, "DistinctItems"),
        time(behavior["FirstTime"].as_i64().unwrap_or(0)),
        time(behavior["LastTime"].as_i64().unwrap_or(0))
    );
    if let Some(by_type) = behavior["ByType"].as_object() {
        let types: Vec<String> =
            by_type.iter().map(|(name, count)| format!("{name} {}", count.as_u64().unwrap_or(0))).collect();
        println!("             by type: {}", types.join(", "));
    }
    let searches = &result["QueryLog"];
    println!(
        "  query log  {:>12} searches, {} raw_query ({} with results), {} distinct queries",
        number(searches, "Searches"),
        number(searches, "RawQuerySearches"),
        number(searches, "RawQuerySearchesWithResults"),
        number(searches, "DistinctQueries")
    );
    println!(
        "  items {}, users {}, {} records not yet compacted, {} Parquet files",
        number(&result, "ItemInfos"),
        number(&result, "Users"),
        number(&result, "RecordsInLog"),
        number(&result, "ParquetFiles")
    );
    println!("  ready to train (default parameters):");
    for function in result["Functions"].as_array().into_iter().flatten() {
        let ready = function["Ready"].as_bool().unwrap_or(false);
        let failed: Vec<String> = function["Checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|check| check["Passed"] == false)
            .map(|check| {
                format!("{} ({})", check["Check"].as_str().unwrap_or(""), check["Detail"].as_str().unwrap_or(""))
            })
            .collect();
        let verdict = if ready { "yes".to_string() } else { format!("no: {}", failed.join("; ")) };
        println!("    {:<11} {verdict}", function["FunctionName"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub async fn compact(arguments: CompactArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    let path = format!("/v4/openapi/app-groups/{}/dataset/actions/compact", encode_segment(&arguments.app));
    let body = client.call_ok("CompactDataset", "POST", &path, None).await?;
    let result = &body["Result"];
    println!(
        "compacted {} records from {} log segment(s) into {} Parquet file(s)",
        result["RecordsCompacted"], result["SegmentsCompacted"], result["FilesWritten"]
    );
    Ok(())
}
