//! `chatd config check` and `chatd config show`.
use std::collections::BTreeSet;

use anyhow::bail;
use serde_json::Value;

use crate::{cli::ConfigCommand, config::Config};

/// Variables that configure the CLI itself rather than a configuration key.
const CLI_VARIABLES: &[&str] = &["CHATD_CONFIG", "CHATD_PASSWORD"];

pub fn run(config: &Config, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => check(config),
        ConfigCommand::Show { json } => {
            let redacted = redacted(config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&redacted)?);
            } else {
                print!("{}", toml::to_string_pretty(&redacted)?);
            }
            Ok(())
        }
    }
}

/// Loading already validated every value; this adds the warnings a person would want.
fn check(config: &Config) -> anyhow::Result<()> {
    let mut warnings = Vec::new();
    let known = known_variables(config)?;
    for (name, _) in std::env::vars() {
        if name.starts_with("CHATD_") && !known.contains(&name) && !CLI_VARIABLES.contains(&name.as_str()) {
            warnings.push(format!("unknown environment variable {name} is ignored (keys nest with `__`, e.g. CHATD_DATABASE__URL)"));
        }
    }
    if let Some(problem) = weak_secret(&config.auth.jwt_secret) {
        warnings.push(format!("auth.jwt_secret {problem}; leave it empty to have a random one generated"));
    }
    if config.metrics.enabled && config.metrics.token.is_empty() {
        warnings.push(
            "METRICS ARE PUBLIC: metrics.enabled is on and metrics.token is empty, so anyone who reaches the port \
             can read /metrics; set metrics.token"
                .into(),
        );
    }
    warnings.extend(crate::store::permissions::loose_modes(&config.data_dir));
    if config.database.synchronous == "normal" {
        warnings.push("database.synchronous = \"normal\": acked messages may be lost on power failure".into());
    }
    if config.auth.token_ttl_secs > 90 * 24 * 3600 {
        warnings.push("auth.token_ttl_secs is over 90 days".into());
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if std::fs::create_dir_all(&config.data_dir).is_err() {
        bail!("data_dir {} cannot be created", config.data_dir.display());
    }
    eprintln!("configuration ok ({} warning(s))", warnings.len());
    Ok(())
}

fn weak_secret(secret: &str) -> Option<&'static str> {
    if secret.is_empty() {
        return None;
    }
    let lowered = secret.to_ascii_lowercase();
    if ["secret", "changeme", "password", "chatd", "example"].iter().any(|w| lowered.contains(w)) {
        return Some("contains a dictionary word");
    }
    let distinct: BTreeSet<char> = secret.chars().collect();
    if distinct.len() < 10 {
        return Some("uses fewer than 10 distinct characters");
    }
    None
}

fn redacted(config: &Config) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(config)?;
    for pointer in ["/auth/jwt_secret", "/metrics/token"] {
        if let Some(secret) = value.pointer_mut(pointer) {
            if secret.as_str().is_some_and(|s| !s.is_empty()) {
                *secret = Value::String("<redacted>".into());
            }
        }
    }
    Ok(value)
}

/// Every `CHATD_*` name that maps to a configuration key.
fn known_variables(config: &Config) -> anyhow::Result<BTreeSet<String>> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        if let Value::Object(map) = value {
            for (key, child) in map {
                let name = if prefix.is_empty() { key.to_uppercase() } else { format!("{prefix}__{}", key.to_uppercase()) };
                walk(&name, child, out);
            }
        } else {
            out.insert(format!("CHATD_{prefix}"));
        }
    }
    let mut names = BTreeSet::new();
    walk("", &serde_json::to_value(config)?, &mut names);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_nested_variable_names() {
        let names = known_variables(&Config::default()).unwrap();
        assert!(names.contains("CHATD_LISTEN"));
        assert!(names.contains("CHATD_DATABASE__URL"));
        assert!(names.contains("CHATD_AUTH__TOKEN_TTL_SECS"));
        assert!(!names.contains("CHATD_DATABASE"));
    }

    #[test]
    fn flags_weak_secrets() {
        assert!(weak_secret("").is_none());
        assert!(weak_secret("my-secret-my-secret-my-secret-1234").is_some());
        assert!(weak_secret("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(weak_secret("f3b9c2e1a7d64b0e9c8a1f2d3e4b5c6a7").is_none());
    }

    #[test]
    fn show_redacts_the_secret() {
        let mut config = Config::default();
        config.auth.jwt_secret = "f3b9c2e1a7d64b0e9c8a1f2d3e4b5c6a7".into();
        let shown = redacted(&config).unwrap().to_string();
        assert!(!shown.contains("f3b9c2e1"));
        assert!(shown.contains("<redacted>"));
    }
}
