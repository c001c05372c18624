//! B2: placeholder, filled in below.
use crate::infra::Env;
use crate::report::Row;
use anyhow::Result;
use std::path::Path;

pub async fn run(_env: &Env, _manifest: &Path, _n: u64, _mahnwerk_pg: Option<f64>) -> Result<Row> {
    anyhow::bail!("B2 not implemented yet")
}
