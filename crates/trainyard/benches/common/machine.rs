//! Machine facts the benchmarks print with their figures (shared by `api_latency` and `ingest`).

use std::path::Path;

pub fn command_output(program: &str, arguments: &[&str]) -> String {
    std::process::Command::new(program)
        .args(arguments)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// The profile the server binary was built with, from where cargo put it (`target/<profile>/`).
pub fn server_profile() -> String {
    let binary = Path::new(env!("CARGO_BIN_EXE_trainyard"));
    let directory = binary.parent().and_then(Path::file_name).and_then(|name| name.to_str()).unwrap_or("?");
    let profile = match directory {
        "release" => "release (cargo bench: the `bench` profile, which inherits `release`)".to_string(),
        "debug" => "debug (unoptimized: figures are not representative)".to_string(),
        other => other.to_string(),
    };
    let assertions = if cfg!(debug_assertions) { "on" } else { "off" };
    format!("{profile}; debug assertions {assertions}; binary {}", binary.display())
}
