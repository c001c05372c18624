//! The event handler on the consumer library: every fact on a case stream makes the service
//! look at the case again and record its next action (see [`crate::engine::Dunning::observe`]).
//! It reads the case from the log instead of trusting the message, so redeliveries and the order
//! in which replicas receive messages change nothing.

use crate::engine::Dunning;
use crate::facts::is_fact_type;
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use mahnwerk_domain::{CaseId, TenantId};
use sqlx::{Any, Transaction};

/// Consumes `{prefix}.*.case.>`.
pub struct CaseHandler {
    pub dunning: Dunning,
}

/// The subject filter (below the bus prefix) of the handler.
pub const FILTER: &str = "*.case.>";

impl Handler for CaseHandler {
    async fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        // Our own `dunning.*` events and other services' (letters, collection) need nothing:
        // whoever appends dunning events records the case's next action itself.
        if !is_fact_type(&event.event_type) {
            return Ok(());
        }
        let Some(case) = mahnwerk_bus::envelope::case_of(event) else {
            return Ok(());
        };
        let tenant: TenantId = event
            .tenant
            .parse()
            .map_err(|e| HandlerError::Permanent(format!("tenant: {e}")))?;
        let case: CaseId = case
            .parse()
            .map_err(|e| HandlerError::Permanent(format!("case id: {e}")))?;
        self.dunning.observe(tx, &tenant, case).await?;
        Ok(())
    }
}
