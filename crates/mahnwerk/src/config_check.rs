//! The one typed configuration of `serve` from flags, `MAHNWERK_*` environment variables and an
//! optional file, checked before anything starts; `mahnwerk config check` prints it.
//!
//! Precedence: flag > environment > file (`MAHNWERK_CONFIG_FILE`: `KEY=VALUE` lines with the
//! environment variables' names, `#` comments) > default. The file's settings become flags for
//! every key neither the environment nor the command line sets, so one parser (clap, through
//! [`ServeArgs`]) types every value, wherever it came from. Errors name the key: an unknown key
//! in the file (with its line), a value that does not parse, a value that parses but cannot
//! work (an address, a TLS file, an SMTP mode).

use crate::config::ServeArgs;
use anyhow::{Context as _, bail};
use clap::Args as _;
use clap::parser::ValueSource;
use std::collections::BTreeSet;
use std::ffi::OsString;

/// Names the optional configuration file.
pub const FILE_VAR: &str = "MAHNWERK_CONFIG_FILE";

/// `MAHNWERK_*` variables that are read by something else than `serve` (not typos).
const OTHER_VARS: &[&str] = &[
    FILE_VAR,
    "MAHNWERK_LOG_FORMAT",
    "MAHNWERK_API_KEY",
    "MAHNWERK_ADDR",
    "MAHNWERK_PYTHON",
];

/// `serve`'s arguments as clap sees them.
fn command() -> clap::Command {
    ServeArgs::augment_args(clap::Command::new("serve"))
}

/// Every `(environment key, long flag, hidden value)` of `serve`.
fn keys() -> Vec<(String, String, bool)> {
    command()
        .get_arguments()
        .filter_map(|a| {
            Some((
                a.get_env()?.to_string_lossy().into_owned(),
                a.get_long()?.to_owned(),
                a.is_hide_env_values_set() || is_secret(&a.get_env()?.to_string_lossy()),
            ))
        })
        .collect()
}

fn is_secret(key: &str) -> bool {
    ["PASSWORD", "SECRET", "TOKEN", "API_KEY"]
        .iter()
        .any(|s| key.contains(s))
}

/// Where the subcommand's own arguments start in `argv` (`serve`, `config check`), if it is one
/// of those that take the configuration.
fn configured_at(argv: &[OsString]) -> Option<usize> {
    match (argv.get(1)?.to_str()?, argv.get(2).and_then(|a| a.to_str())) {
        ("serve", _) => Some(2),
        ("config", Some("check")) => Some(3),
        _ => None,
    }
}

/// The settings of the configuration file `text` (named `name` in errors), checked against the
/// known keys: `(key, value, line)`.
pub fn parse_file(name: &str, text: &str) -> anyhow::Result<Vec<(String, String, usize)>> {
    let known: BTreeSet<String> = keys().into_iter().map(|(k, _, _)| k).collect();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("{name}:{}: expected KEY=VALUE, found {line:?}", i + 1);
        };
        let key = key.trim().trim_start_matches("export ").trim();
        if !known.contains(key) {
            bail!(
                "{name}:{}: {key} is not a configuration key (see `mahnwerk serve --help`)",
                i + 1
            );
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.push((key.to_owned(), value.to_owned(), i + 1));
    }
    Ok(out)
}

/// `argv` with the configuration file's settings added as flags (for keys neither the
/// environment nor `argv` sets), and the keys taken from the file.
pub fn with_file(mut argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, BTreeSet<String>)> {
    let mut from_file = BTreeSet::new();
    let (Some(at), Some(path)) = (configured_at(&argv), std::env::var_os(FILE_VAR)) else {
        return Ok((argv, from_file));
    };
    let name = path.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&path).with_context(|| format!("{FILE_VAR}: {name}"))?;
    let flags: std::collections::HashMap<String, String> =
        keys().into_iter().map(|(k, l, _)| (k, l)).collect();
    let mut extra = Vec::new();
    for (key, value, _) in parse_file(&name, &text)? {
        let long = format!("--{}", flags[&key]);
        let on_command_line = argv[at..].iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        });
        if std::env::var_os(&key).is_none() && !on_command_line {
            extra.push(OsString::from(format!("{long}={value}")));
            from_file.insert(key);
        }
    }
    let rest = argv.split_off(at);
    argv.extend(extra);
    argv.extend(rest);
    Ok((argv, from_file))
}

/// A clap error about a value, told by the key it came from; `None` for other errors (usage,
/// help), which clap reports itself.
pub fn explain(argv: &[OsString], err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    configured_at(argv)?;
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.trim_start_matches("--").split([' ', '=']).next()?;
    let (key, _, _) = keys().into_iter().find(|(_, l, _)| l == long)?;
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!(" {v:?}"),
        _ => String::new(),
    };
    let detail = err.render().to_string();
    let detail = detail
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    Some(format!(
        "configuration: {key} (--{long}):{value} is not valid: {detail}"
    ))
}

/// Checks what parsing cannot: values that parse but cannot work. Errors name the key.
pub fn validate(args: &ServeArgs) -> anyhow::Result<()> {
    let url = &args.store.database_url;
    if !(url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:"))
    {
        bail!(
            "MAHNWERK_DATABASE_URL: {:?} is neither postgres://… nor sqlite:…",
            mask_url(url)
        );
    }
    if !(args.nats_url.contains("://") || args.nats_url.contains(':')) {
        bail!("NATS_URL: {:?} is not nats://host:port", args.nats_url);
    }
    if args.metrics_listen != "off" && args.metrics_listen.parse::<std::net::SocketAddr>().is_err()
    {
        bail!(
            "MAHNWERK_METRICS_LISTEN: {:?} is neither host:port nor off",
            args.metrics_listen
        );
    }
    if args.namespace.is_empty()
        || !args
            .namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "MAHNWERK_NAMESPACE: {:?} must be letters, digits, '-' or '_' (a subject token)",
            args.namespace
        );
    }
    for (key, n) in [
        ("MAHNWERK_PARTITIONS", usize::from(args.partitions)),
        ("MAHNWERK_RELAY_BATCH", args.relay_batch),
        ("MAHNWERK_GRPC_CONCURRENCY", args.grpc_concurrency),
    ] {
        if n == 0 {
            bail!("{key}: must be at least 1");
        }
    }
    if !(1..=mahnwerk_bus::MAX_REPLICAS).contains(&args.stream_replicas) {
        bail!(
            "MAHNWERK_STREAM_REPLICAS: {} is not between 1 and {} (JetStream keeps at most {} replicas, \
             and at most one per server)",
            args.stream_replicas,
            mahnwerk_bus::MAX_REPLICAS,
            mahnwerk_bus::MAX_REPLICAS
        );
    }
    for (key, path) in [
        ("MAHNWERK_TLS_CERT", &args.tls_cert),
        ("MAHNWERK_TLS_KEY", &args.tls_key),
        ("MAHNWERK_TLS_CLIENT_CA", &args.tls_client_ca),
    ] {
        if let Some(p) = path {
            std::fs::metadata(p).with_context(|| format!("{key}: {}", p.display()))?;
        }
    }
    if let Some(p) = &args.base_rates {
        mahnwerk_dunning::law::BaseRateTable::from_file(p)
            .map_err(|e| anyhow::anyhow!("MAHNWERK_BASE_RATES: {e}"))?;
    }
    args.letters.config(args.bus())?;
    Ok(())
}

/// `scheme://user:password@host…` with the password masked.
fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => url.to_owned(),
    }
}

/// `MAHNWERK_*` variables in the environment that no part of Mahnwerk reads (likely typos).
pub fn unknown_vars() -> Vec<String> {
    let known: BTreeSet<String> = keys().into_iter().map(|(k, _, _)| k).collect();
    let mut out: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("MAHNWERK_"))
        .filter(|k| !known.contains(k) && !OTHER_VARS.contains(&k.as_str()))
        .collect();
    out.sort();
    out
}

/// `mahnwerk config check`: the effective configuration, one `KEY=value  # source` line per
/// key, secrets masked; `Err` (exit non-zero) when a value cannot work.
pub fn check(
    argv: &[OsString],
    from_file: &BTreeSet<String>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let at = configured_at(argv).unwrap_or(argv.len());
    let mut cmd = command().no_binary_name(true);
    let matches = match cmd.try_get_matches_from_mut(&argv[at..]) {
        Ok(m) => m,
        Err(e) => bail!(explain(argv, &e).unwrap_or_else(|| e.render().to_string())),
    };
    let args = <ServeArgs as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|e| anyhow::anyhow!(explain(argv, &e).unwrap_or_else(|| e.to_string())))?;
    validate(&args)?;
    let ids: std::collections::HashMap<String, String> = cmd
        .get_arguments()
        .filter_map(|a| {
            Some((
                a.get_env()?.to_string_lossy().into_owned(),
                a.get_id().to_string(),
            ))
        })
        .collect();
    for (key, _, hidden) in keys() {
        let id = &ids[&key];
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = raw.join(",");
        let shown = if hidden && !value.is_empty() {
            "********".to_owned()
        } else if key.ends_with("_URL") {
            mask_url(&value)
        } else {
            value
        };
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.contains(&key) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        writeln!(out, "{key}={shown}  # {source}")?;
    }
    for k in unknown_vars() {
        writeln!(out, "# warning: {k} is set but is not a configuration key")?;
    }
    Ok(())
}

/// `mahnwerk config …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration `serve` would run with (same flags, environment and
    /// MAHNWERK_CONFIG_FILE), secrets masked; exit 1 naming the first key whose value cannot
    /// work.
    Check(Box<ServeArgs>),
}
