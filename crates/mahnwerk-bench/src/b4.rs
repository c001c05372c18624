//! B4: placeholder.
use crate::infra::Env;
use crate::report::Row;
use anyhow::Result;

pub async fn run(_env: &Env, _backend: &str, _n: u64, _b1: Option<f64>) -> Result<Row> {
    anyhow::bail!("B4 not implemented yet")
}
