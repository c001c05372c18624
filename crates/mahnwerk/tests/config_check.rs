//! `mahnwerk config check` and the checks `serve` runs before starting: the effective
//! configuration from flags, environment and MAHNWERK_CONFIG_FILE with secrets masked, and a
//! non-zero exit naming the key of a bad value (one that does not parse, one that parses but
//! cannot work, an unknown key in the file).

use std::process::Output;

fn mahnwerk(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"));
    cmd.args(args);
    // Only what this test sets (the developer's or CI's own MAHNWERK_* stay out).
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MAHNWERK_") || k == "NATS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_masked() {
    let out = mahnwerk(
        &["config", "check", "--relay-batch", "500"],
        &[
            (
                "MAHNWERK_DATABASE_URL",
                "postgres://mahnwerk:s3cret-db@db:5432/mahnwerk",
            ),
            ("MAHNWERK_SMTP_HOST", "smtp.example.org"),
            ("MAHNWERK_SMTP_PASSWORD", "hunter2-smtp"),
            ("MAHNWERK_DOCUMENTS_S3_SECRET_ACCESS_KEY", "aws-s3cret"),
            ("MAHNWERK_PARTITIONS", "4"),
            ("MAHNWERK_STREAM_REPLICAS", "3"),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for secret in ["s3cret-db", "hunter2-smtp", "aws-s3cret"] {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }
    for line in [
        "MAHNWERK_DATABASE_URL=postgres://mahnwerk:********@db:5432/mahnwerk  # env",
        "MAHNWERK_SMTP_PASSWORD=********  # env",
        "MAHNWERK_DOCUMENTS_S3_SECRET_ACCESS_KEY=********  # env",
        "MAHNWERK_PARTITIONS=4  # env",
        "MAHNWERK_STREAM_REPLICAS=3  # env",
        "MAHNWERK_RELAY_BATCH=500  # flag",
        "MAHNWERK_SMTP_HOST=smtp.example.org  # env",
        "MAHNWERK_GRPC_CONCURRENCY=256  # default",
        "NATS_URL=nats://127.0.0.1:4222  # default",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
}

#[test]
fn a_bad_value_is_refused_naming_its_key() {
    for (env, key) in [
        (("MAHNWERK_PARTITIONS", "many"), "MAHNWERK_PARTITIONS"),
        (
            ("MAHNWERK_STREAM_REPLICAS", "three"),
            "MAHNWERK_STREAM_REPLICAS",
        ),
        (
            ("MAHNWERK_STREAM_REPLICAS", "0"),
            "MAHNWERK_STREAM_REPLICAS",
        ),
        (
            ("MAHNWERK_STREAM_REPLICAS", "6"),
            "MAHNWERK_STREAM_REPLICAS",
        ),
        (("MAHNWERK_SMTP_TLS", "sometimes"), "MAHNWERK_SMTP_TLS"),
        (
            ("MAHNWERK_METRICS_LISTEN", "everywhere"),
            "MAHNWERK_METRICS_LISTEN",
        ),
        (
            ("MAHNWERK_DATABASE_URL", "mysql://x"),
            "MAHNWERK_DATABASE_URL",
        ),
        (("MAHNWERK_SERVICES", "ingest,billing"), "MAHNWERK_SERVICES"),
        (
            ("MAHNWERK_TLS_CERT", "/nonexistent/cert.pem"),
            "MAHNWERK_TLS_CERT",
        ),
        (
            ("MAHNWERK_BASE_RATES", "/nonexistent/base_rates.csv"),
            "MAHNWERK_BASE_RATES",
        ),
    ] {
        let mut envs = vec![env];
        if key == "MAHNWERK_TLS_CERT" {
            envs.push(("MAHNWERK_TLS_KEY", "/nonexistent/key.pem"));
        }
        for args in [&["config", "check"][..], &["serve"][..]] {
            let out = mahnwerk(args, &envs);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{args:?} {env:?} accepted");
            assert!(
                stderr.contains(key),
                "{args:?} {env:?}: the error does not name {key}:\n{stderr}"
            );
        }
    }
}

#[test]
fn the_configuration_file_is_read_below_the_environment_and_its_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mahnwerk.env");
    std::fs::write(
        &file,
        "# production settings\nMAHNWERK_PARTITIONS=8\nMAHNWERK_NAMESPACE=\"prod\"\n\
         MAHNWERK_SMTP_PASSWORD=from-file-secret\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = mahnwerk(
        &["config", "check"],
        &[
            ("MAHNWERK_CONFIG_FILE", path),
            ("MAHNWERK_NAMESPACE", "from-env"),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("MAHNWERK_PARTITIONS=8  # file"), "{stdout}");
    assert!(
        stdout.contains("MAHNWERK_NAMESPACE=from-env  # env"),
        "{stdout}"
    );
    assert!(
        stdout.contains("MAHNWERK_SMTP_PASSWORD=********  # file"),
        "{stdout}"
    );
    assert!(!stdout.contains("from-file-secret"), "{stdout}");

    // A typo in the file is named with its line; a bad value in the file names its key.
    std::fs::write(&file, "MAHNWERK_PARTITIONS=2\nMAHNWERK_PARTITONS=4\n").unwrap();
    for args in [&["config", "check"][..], &["serve"][..]] {
        let out = mahnwerk(args, &[("MAHNWERK_CONFIG_FILE", path)]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!(
                "{path}:2: MAHNWERK_PARTITONS is not a configuration key"
            )),
            "{stderr}"
        );
    }
    std::fs::write(&file, "MAHNWERK_RELAY_BATCH=lots\n").unwrap();
    let out = mahnwerk(&["config", "check"], &[("MAHNWERK_CONFIG_FILE", path)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("MAHNWERK_RELAY_BATCH"),
        "{}",
        text(&out.stderr)
    );
}
