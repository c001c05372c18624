//! `mahnwerk debtor erase`: erase a debtor's personal data (GDPR Art. 17, ADR 006) directly in
//! the store, as an operator (the API's `CaseService.EraseDebtor` does the same for a tenant).

use crate::config::StoreArgs;
use mahnwerk_ingest::erasure::{EraseRequest, erase_debtor};
use std::io::Write;

#[derive(Debug, clap::Subcommand)]
pub enum DebtorCommand {
    /// Destroy the data keys of a debtor (customer number, their cases, IBANs they paid from)
    /// and record the erasure without personal data. Amounts, dates and hash chains stay;
    /// dunning of their cases stops. Needs the master key the data was sealed with.
    Erase {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        /// The tenant's customer number of the debtor (all their cases).
        #[arg(long)]
        customer_number: Option<String>,
        /// An invoice of the debtor (for cases without a customer number); repeatable.
        #[arg(long = "invoice")]
        invoices: Vec<String>,
        /// An IBAN the debtor paid from; repeatable.
        #[arg(long = "iban")]
        ibans: Vec<String>,
        /// Why, e.g. the reference of the data subject's request (recorded; no personal data).
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(cmd: DebtorCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let DebtorCommand::Erase {
        store,
        tenant,
        customer_number,
        invoices,
        ibans,
        reason,
    } = cmd;
    let (log, _keys, pool) = crate::server::open_stores(&store.database_url).await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let erased = erase_debtor(
        &log,
        &pool,
        &EraseRequest {
            tenant,
            customer_number,
            invoice_numbers: invoices,
            ibans,
            reason,
            actor: format!("cli:{user}"),
        },
    )
    .await?;
    writeln!(
        out,
        "erased: {} data keys destroyed, erasure recorded on {} and {} cases",
        erased.keys_erased,
        erased.stream,
        erased.cases.len()
    )?;
    Ok(())
}
