//! `chatd config check` and `chatd config show`.
use std::{collections::BTreeSet, path::Path};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{cli::ConfigCommand, config::Config};

/// Variables that configure the CLI itself rather than a configuration key.
const CLI_VARIABLES: &[&str] = &["CHATD_CONFIG", "CHATD_PASSWORD"];

pub fn run(config: &Config, file: Option<&Path>, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => check(config, file),
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
fn check(config: &Config, file: Option<&Path>) -> anyhow::Result<()> {
    let mut warnings = Vec::new();
    // The same file `Config::load` read: the one asked for, else ./config.toml when present.
    let default = Path::new("config.toml");
    let file = file.map(Path::to_path_buf).or_else(|| default.is_file().then(|| default.to_path_buf()));
    if let Some(file) = &file {
        warnings.extend(unknown_file_keys(file, config)?);
    }
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
    if !config.listen_addr().ip().is_loopback() {
        for limit in config.rate_limits.switched_off() {
            warnings.push(format!(
                "rate_limits.{limit} = 0 means no limit at all, on a server listening on {}",
                config.listen
            ));
        }
    }
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

/// Keys and tables in the configuration file that no setting has; figment ignores them silently.
fn unknown_file_keys(file: &Path, config: &Config) -> anyhow::Result<Vec<String>> {
    fn walk(prefix: &str, given: &toml::Table, known: &serde_json::Map<String, Value>, file: &Path, out: &mut Vec<String>) {
        for (key, value) in given {
            let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match (known.get(key), value) {
                (Some(Value::Object(children)), toml::Value::Table(table)) => walk(&name, table, children, file, out),
                (Some(_), _) => {}
                (None, value) => {
                    let what = if value.is_table() { format!("table [{name}]") } else { format!("key `{name}`") };
                    let hint = closest(key, known.keys().map(String::as_str))
                        .map(|close| if prefix.is_empty() { close.to_owned() } else { format!("{prefix}.{close}") })
                        .map(|close| format!(" (did you mean `{close}`?)"))
                        .unwrap_or_default();
                    out.push(format!("unknown {what} in {} is ignored{hint}", file.display()));
                }
            }
        }
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let given: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", file.display()))?;
    let Value::Object(known) = serde_json::to_value(config)? else { bail!("the configuration is not a table") };
    let mut warnings = Vec::new();
    walk("", &given, &known, file, &mut warnings);
    Ok(warnings)
}

/// The known name nearest to a misspelt one, when it is near enough to be what was meant:
/// within a third of its length in edits, or the start of it (`listen_port` → `listen`).
fn closest<'a>(wrong: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|name| (edit_distance(wrong, name), name))
        .filter(|(distance, name)| {
            distance * 3 <= wrong.len().max(name.len()) || (name.len() >= 4 && (wrong.starts_with(name) || name.starts_with(wrong)))
        })
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance: insertions, deletions and substitutions of one character each.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            current.push((previous[j] + usize::from(ca != *cb)).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
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
    fn suggests_the_key_a_typo_was_meant_to_be() {
        let keys = ["listen", "data_dir", "database", "auth", "log", "limits"];
        assert_eq!(edit_distance("databse", "database"), 1);
        assert_eq!(edit_distance("", "log"), 3);
        assert_eq!(closest("databse", keys.into_iter()), Some("database"));
        assert_eq!(closest("listen_port", keys.into_iter()), Some("listen"));
        assert_eq!(closest("datadir", keys.into_iter()), Some("data_dir"));
        assert_eq!(closest("frobnicate", keys.into_iter()), None);
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
