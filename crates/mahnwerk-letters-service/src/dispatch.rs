//! The dispatch worker: takes ledger rows through render → check → send → report.
//!
//! 0. A post letter to a debtor without a postal address is `held` ("postal address missing"),
//!    never rendered with an empty window; the address given releases it to `intent`.
//! 1. `intent`: build the letter model (the step, the invoice projection, the tenant's
//!    letterhead), render, store the PDF content-addressed, commit `rendered` (or `draft`).
//! 2. `rendered`: read the case stream; settled, paused, disputed or ended → `suppressed`.
//!    Otherwise append `letter.rendered.v1` with the version just read (a payment recorded in
//!    between conflicts, and the check runs again), commit `sending`, call the channel, commit
//!    the outcome: `sent` (and the creditor's copy row), `failed` (and the post row when an
//!    email was refused for good), back to `rendered` for a transient failure, or `unknown`.
//!    A copy row just recorded goes through the same check and send at once, on the
//!    debtor letter's inputs.
//! 3. A final state whose event is not on the case stream yet (`reported = 0`) is appended
//!    with a deterministic event id (a repeat after a crash is a duplicate, not a second event).
//!
//! At start every row still `sending` becomes `unknown`: flagged for review, never resent.
//! One dispatcher per service database (rows are not claimed across processes).

mod consolidated;
mod outcome;
mod report;

use crate::case_file::CaseFile;
use crate::channels::{Email, Outcome, PostJob, PostSpool, SmtpSender};
use crate::documents::Documents;
use crate::error::{Error, Result};
use crate::mapping;
use crate::store::{self, LedgerRow, NewRow, state};
use crate::tenant::{self, Renderers, TenantConfig};
use futures::StreamExt;
use mahnwerk_domain::{EventId, Invoice, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, derived_event_id,
};
use mahnwerk_letters::LetterModel;
use mahnwerk_letters::events::{CopyTo, LetterRendered};
use sqlx::AnyPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Transient failures before a letter is given up as failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// Everything the worker needs.
#[derive(Clone)]
pub struct Dispatcher {
    pub log: EventLog,
    pub pool: AnyPool,
    pub docs: Documents,
    pub smtp: Option<SmtpSender>,
    pub spool: PostSpool,
    pub renderers: Renderers,
    pub wake: Arc<Notify>,
    /// Rows handled at once (their database and log round trips, SMTP conversations overlap).
    pub concurrency: usize,
    /// Renders at once on the blocking pool (rendering is CPU-bound: one per core).
    pub render_slots: Arc<tokio::sync::Semaphore>,
    /// Pause after the n-th transient failure.
    pub retry_backoff: Duration,
}

/// What a letter is made from.
struct Inputs {
    tenant: TenantId,
    step_event: EventId,
    step: StepReached,
    invoice: Invoice,
    config: TenantConfig,
    /// A consolidated letter's consolidation and members ([`consolidated`]).
    consolidated: Option<consolidated::Consolidated>,
}

impl Inputs {
    /// Whose personal data the letter holds: its PDF and spool job are sealed under the
    /// debtor's data key (ADR 006), like the debtor's events.
    fn owner(&self, row: &LedgerRow) -> Result<crate::documents::Owner> {
        let case = uuid::Uuid::parse_str(&row.case_id)
            .map_err(|e| Error::invalid("case_id", e.to_string()))?;
        let stream = mahnwerk_domain::CaseId(case).stream(&self.tenant);
        Ok(crate::documents::Owner {
            tenant: self.tenant.to_string(),
            subject: mahnwerk_eventlog::privacy::Keyring::debtor_subject(
                self.invoice.debtor.customer_number.as_deref(),
                stream.as_str(),
            ),
        })
    }

    fn model(&self, row: &LedgerRow) -> Result<LetterModel> {
        let settings = self
            .config
            .settings
            .as_ref()
            .ok_or_else(|| Error::Precondition("no letterhead configured".into()))?;
        let case = row
            .case_id
            .parse()
            .map_err(|_| Error::invalid("case_id", "not a case id"))?;
        let endorsement = if row.channel == "post" {
            settings.endorsement(row.step)
        } else {
            None
        };
        let mut model = match &self.consolidated {
            Some(c) => {
                mapping::consolidated_model(&c.consolidation, &c.included(), settings, endorsement)?
            }
            None => mapping::letter_model(&self.step, &self.invoice, case, settings, endorsement)?,
        };
        if row.channel == "email" && !self.invoice.has_postal_address() {
            mapping::email_window(&mut model, &self.invoice);
        }
        Ok(model)
    }
}

fn permanent(e: &Error) -> bool {
    !e.is_transient()
}

impl Dispatcher {
    /// Run until `shutdown`: recover interrupted sends, then work the ledger.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let recovered = store::recover_interrupted(&self.pool).await?;
        if recovered > 0 {
            tracing::warn!(letters = recovered, "interrupted sends flagged for review");
        }
        loop {
            let did = tokio::select! {
                () = &mut shutdown => return Ok(()),
                r = self.pass() => r,
            };
            match did {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "letters dispatch pass failed"),
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// One pass over the rows with work; returns how many made progress (rows that keep
    /// failing do not count, so the worker pauses instead of spinning on them).
    pub async fn pass(&self) -> Result<usize> {
        let rows = store::work(&self.pool, 64).await?;
        let progressed = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(rows)
            .for_each_concurrent(self.concurrency.max(1), |row| {
                let progressed = &progressed;
                async move {
                    match self.process(row.clone()).await {
                        Ok(()) => {
                            progressed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(err) => {
                            tracing::warn!(letter = %row.letter_id, state = %row.state, error = %err, "letter step failed; will retry");
                        }
                    }
                }
            })
            .await;
        Ok(progressed.into_inner())
    }

    async fn process(&self, mut row: LedgerRow) -> Result<()> {
        // The inputs are read once per row and pass (render and send share them), and the
        // PDF just rendered goes to the channel from memory, not read back from the store.
        let mut inputs = None;
        let mut pdf = None;
        if row.state == state::INTENT || row.state == state::RENDERED {
            let i = self.inputs(&row).await?;
            if row.channel == "post" && row.recipient == "debtor" {
                row = self.hold_without_address(row, &i.invoice).await?;
            }
            inputs = Some(i);
        }
        if row.state == state::INTENT
            && let Some(i) = &inputs
        {
            (row, pdf) = self.render(row, i).await?;
        }
        if row.state == state::RENDERED
            && let Some(i) = inputs.as_mut()
        {
            row = self.send(row, i, pdf).await?;
        }
        if !row.reported {
            self.report(&row, inputs.as_ref()).await?;
        }
        // The creditor's copy the send just recorded goes out now, from the same inputs
        // (otherwise the next pass reads the step, invoice and letterhead again for it).
        if let Some(i) = inputs.as_mut()
            && let Some(copy) = copy_row(&row, i)
        {
            let copy = self.send(copy, i, None).await?;
            if !copy.reported {
                self.report(&copy, Some(i)).await?;
            }
        }
        Ok(())
    }

    /// Render `model` on the blocking pool, at most one render per core at a time.
    pub(super) async fn render_pdf(
        &self,
        renderer: Arc<mahnwerk_letters::LetterRenderer>,
        model: LetterModel,
    ) -> Result<std::result::Result<mahnwerk_letters::RenderedLetter, mahnwerk_letters::Error>>
    {
        let _slot = self
            .render_slots
            .acquire()
            .await
            .map_err(|e| Error::Precondition(format!("render slots: {e}")))?;
        tokio::task::spawn_blocking(move || renderer.render(&model))
            .await
            .map_err(|e| Error::Precondition(format!("render task: {e}")))
    }

    async fn inputs(&self, row: &LedgerRow) -> Result<Inputs> {
        if let Some(id) = store::consolidation_of_seq(&row.seq) {
            return self.consolidated_inputs(row, id).await;
        }
        let tenant: TenantId = row
            .tenant
            .parse()
            .map_err(|_| Error::invalid("tenant", "not a tenant id"))?;
        let (event_id, json) =
            store::step(&self.pool, &row.tenant, &row.case_id, row.step, &row.seq)
                .await?
                .ok_or_else(|| Error::NotFound(format!("step {}", row.step)))?;
        let step: StepReached =
            serde_json::from_str(&json).map_err(|e| Error::invalid("step", e.to_string()))?;
        let step_event = EventId(
            uuid::Uuid::parse_str(&event_id)
                .map_err(|e| Error::invalid("event_id", e.to_string()))?,
        );
        let invoice = store::invoice(&self.pool, &row.tenant, &row.case_id)
            .await?
            .ok_or_else(|| Error::NotFound("invoice".into()))?;
        let config = tenant::load(&self.log, &tenant).await?;
        Ok(Inputs {
            tenant,
            step_event,
            step,
            invoice,
            config,
            consolidated: None,
        })
    }

    /// A post letter to a debtor without a postal address is never rendered with an empty
    /// window: it is held for the creditor ("postal address missing") until the address is
    /// given (`invoice.debtor_address_updated.v1` releases it).
    async fn hold_without_address(
        &self,
        mut row: LedgerRow,
        invoice: &Invoice,
    ) -> Result<LedgerRow> {
        if invoice.has_postal_address() {
            return Ok(row);
        }
        if store::transition(
            &self.pool,
            &row.id,
            &row.state,
            state::HELD,
            None,
            None,
            Some(store::POSTAL_ADDRESS_MISSING),
            false,
        )
        .await?
        {
            tracing::info!(letter = %row.letter_id, step = row.step, "letter held: postal address missing");
            row.state = state::HELD.into();
            row.reason = Some(store::POSTAL_ADDRESS_MISSING.into());
            row.reported = false;
        }
        Ok(row)
    }

    /// A rule violation (no letterhead, invalid model) ends the row as failed, reported.
    async fn fail(&self, mut row: LedgerRow, from: &str, reason: &str) -> Result<LedgerRow> {
        store::transition(
            &self.pool,
            &row.id,
            from,
            state::FAILED,
            None,
            None,
            Some(reason),
            false,
        )
        .await?;
        row.state = state::FAILED.into();
        row.reason = Some(reason.into());
        row.reported = false;
        Ok(row)
    }

    /// A letter with nothing left to send (a consolidated letter whose members all dropped out).
    async fn suppress(&self, mut row: LedgerRow, from: &str, reason: &str) -> Result<LedgerRow> {
        store::transition(
            &self.pool,
            &row.id,
            from,
            state::SUPPRESSED,
            None,
            None,
            Some(reason),
            false,
        )
        .await?;
        tracing::info!(letter = %row.letter_id, step = row.step, reason = %reason, "letter suppressed");
        row.state = state::SUPPRESSED.into();
        row.reason = Some(reason.into());
        row.reported = false;
        Ok(row)
    }

    /// Render, store the PDF, commit `rendered` (or `draft`); returns the row and, when
    /// rendered, the document's SHA-256 and bytes for the send that follows.
    async fn render(
        &self,
        mut row: LedgerRow,
        inputs: &Inputs,
    ) -> Result<(LedgerRow, Option<(String, bytes::Bytes)>)> {
        if let Some(reason) = inputs.consolidated.as_ref().and_then(|c| c.none_left()) {
            return Ok((self.suppress(row, state::INTENT, &reason).await?, None));
        }
        let built = inputs.model(&row).and_then(|model| {
            let r = self.renderers.for_tenant(&inputs.tenant, &inputs.config)?;
            Ok((model, r))
        });
        let (model, renderer) = match built {
            Ok(x) => x,
            Err(e) if permanent(&e) => {
                return Ok((self.fail(row, state::INTENT, &e.to_string()).await?, None));
            }
            Err(e) => return Err(e),
        };
        let letter = match self.render_pdf(renderer, model).await? {
            Ok(l) => l,
            Err(e) => {
                let reason = Error::from(e).to_string();
                return Ok((self.fail(row, state::INTENT, &reason).await?, None));
            }
        };
        let owner = inputs.owner(&row)?;
        let pdf = bytes::Bytes::from(letter.pdf);
        let sha = self.docs.put_owned(&owner, pdf.clone()).await?;
        // A drafts-only tenant, or a step the creditor declined to let Mahnwerk send
        // (approval mode): rendered for the creditor, never dispatched.
        let drafts = inputs.step.draft
            || inputs
                .config
                .settings
                .as_ref()
                .is_some_and(|s| s.drafts_only);
        if drafts {
            let mut tx = self.pool.begin().await?;
            store::inbox_put(&mut *tx, &row, &sha, true).await?;
            store::transition(
                &mut *tx,
                &row.id,
                state::INTENT,
                state::DRAFT,
                Some(&sha),
                None,
                None,
                false,
            )
            .await?;
            tx.commit().await?;
            row.state = state::DRAFT.into();
            row.reported = false;
        } else {
            store::transition(
                &self.pool,
                &row.id,
                state::INTENT,
                state::RENDERED,
                Some(&sha),
                None,
                None,
                true,
            )
            .await?;
            row.state = state::RENDERED.into();
        }
        row.document = Some(sha.clone());
        tracing::info!(letter = %row.letter_id, step = row.step, "letter rendered");
        Ok((row, (!drafts).then_some((sha, pdf))))
    }

    /// Read the whole case stream: its state and version.
    async fn case_file(&self, stream: &StreamId) -> Result<(CaseFile, Option<u64>)> {
        let mut file = CaseFile::default();
        let mut version = None;
        let mut from = 1;
        loop {
            let events = self.log.read_stream(stream, from, 1000).await?;
            let Some(last) = events.last() else { break };
            from = last.version + 1;
            version = Some(last.version);
            for e in &events {
                file.apply(&e.event_type, &e.payload);
            }
            if events.len() < 1000 {
                break;
            }
        }
        Ok((file, version))
    }

    fn event(
        &self,
        inputs_step: EventId,
        row: &LedgerRow,
        event_type: &str,
        payload: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            event_id: derived_event_id(inputs_step, &format!("letters:{event_type}:{}", row.id), 0),
            event_type: event_type.to_owned(),
            payload,
            occurred_at: chrono::Utc::now(),
            metadata: Metadata {
                correlation_id: None,
                causation_id: Some(inputs_step.to_string()),
                actor: "service:letters".into(),
                traceparent: None,
            },
        }
    }

    /// Append one event to the case stream with the version read just before; on a conflict
    /// read again. A duplicate id means it is already there.
    async fn append_case(&self, stream: &StreamId, event: NewEvent) -> Result<()> {
        for _ in 0..20 {
            let v = self.log.stream_version(stream).await?;
            let expected = v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected,
                    events: vec![event.clone()],
                })
                .await
            {
                Ok(_) | Err(mahnwerk_eventlog::Error::DuplicateEvent(_)) => return Ok(()),
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }

    async fn send(
        &self,
        mut row: LedgerRow,
        inputs: &mut Inputs,
        rendered: Option<(String, bytes::Bytes)>,
    ) -> Result<LedgerRow> {
        let stream = StreamId::new(&inputs.tenant, "case", &row.case_id);
        let document = row
            .document
            .clone()
            .ok_or_else(|| Error::Precondition("rendered letter without document".into()))?;
        // The check just before sending, made atomic with the rendered event.
        let mut suppressed = None;
        if inputs.consolidated.is_some() {
            suppressed = self.check_consolidated(&mut row, inputs).await?;
        }
        for attempt in 0.. {
            if inputs.consolidated.is_some() {
                break;
            }
            if attempt == 20 {
                return Err(Error::Conflict);
            }
            let (file, version) = self.case_file(&stream).await?;
            if let Some(reason) = file.suppression() {
                suppressed = Some(reason);
                break;
            }
            if row.recipient != "debtor" {
                break;
            }
            let kind =
                mahnwerk_letters::events::kind_for_template(&inputs.step.template_id, row.step);
            let case = row
                .case_id
                .parse()
                .map_err(|_| Error::invalid("case_id", "not a case id"))?;
            let payload = serde_json::to_value(LetterRendered {
                letter_id: row.letter_id.clone(),
                step: row.step,
                kind,
                document_sha256: document.clone(),
                letterhead_version: inputs.config.letterhead_version,
                templates: inputs.config.templates.keys().cloned().collect(),
                draft: false,
                payment_reference: Some(mapping::rf_reference(&inputs.invoice, case))
                    .filter(|r| !r.is_empty()),
            })
            .map_err(|e| Error::invalid("event", e.to_string()))?;
            let mut ev = self.event(inputs.step_event, &row, "letter.rendered.v1", payload);
            // One announcement per letter and document: every channel of the letter shares it,
            // a letter rendered again (another document) is announced again.
            ev.event_id = derived_event_id(
                inputs.step_event,
                &format!("letters:rendered:{}:{document}", row.letter_id),
                0,
            );
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected,
                    events: vec![ev],
                })
                .await
            {
                Ok(_) | Err(mahnwerk_eventlog::Error::DuplicateEvent(_)) => break,
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(reason) = suppressed {
            return self.suppress(row, state::RENDERED, &reason).await;
        }
        // A consolidated letter may have been rendered again without a member.
        let document = row.document.clone().unwrap_or(document);
        // The PDF goes to email and post (from memory when just rendered); the inbox copy
        // names the stored document only.
        let pdf = match rendered {
            _ if row.channel == "inbox" => bytes::Bytes::new(),
            Some((sha, pdf)) if sha == document => pdf,
            _ => self
                .docs
                .get(&document)
                .await?
                .ok_or_else(|| Error::Storage(format!("document {document} missing")))?,
        };
        let model = inputs.model(&row)?;
        let settings = inputs
            .config
            .settings
            .clone()
            .ok_or_else(|| Error::Precondition("no letterhead configured".into()))?;
        // The email's subject and bodies, before `sending` (a template error fails here).
        let body = if row.channel == "email" {
            let renderer = self.renderers.for_tenant(&inputs.tenant, &inputs.config)?;
            Some(renderer.render_email(&model)?)
        } else {
            None
        };
        if !store::transition(
            &self.pool,
            &row.id,
            state::RENDERED,
            state::SENDING,
            None,
            None,
            None,
            true,
        )
        .await?
        {
            return Ok(row);
        }
        let outcome = match (row.channel.as_str(), row.recipient.as_str(), &body) {
            ("email", recipient, Some(body)) => {
                let attachment = format!("{}.pdf", sanitize(&body.subject));
                let to = if recipient == "debtor" {
                    inputs
                        .invoice
                        .debtor
                        .email
                        .as_ref()
                        .map(|e| e.expose().clone())
                } else {
                    match &settings.copy_to {
                        CopyTo::Email { address } => Some(address.clone()),
                        CopyTo::Inbox => None,
                    }
                };
                match (&self.smtp, to) {
                    (None, _) => Outcome::Permanent("no smtp server configured".into()),
                    (_, None) => Outcome::Permanent("no email address".into()),
                    (Some(smtp), Some(to)) => {
                        let domain = settings
                            .email_from
                            .rsplit('@')
                            .next()
                            .unwrap_or("localhost")
                            .trim_end_matches('>')
                            .to_owned();
                        let subject = if recipient == "debtor" {
                            body.subject.clone()
                        } else {
                            format!("Kopie: {}", body.subject)
                        };
                        smtp.send(&Email {
                            from: &settings.email_from,
                            reply_to: settings.reply_to.as_deref(),
                            to: &to,
                            subject: &subject,
                            text: &body.text,
                            html: &body.html,
                            attachment_name: &attachment,
                            pdf: &pdf,
                            message_id: &format!("{}@{domain}", row.id),
                        })
                        .await
                    }
                }
            }
            ("post", _, _) => {
                let registered = settings.is_registered(row.step);
                self.spool
                    .submit(
                        &PostJob {
                            job_id: &row.id,
                            tenant: &row.tenant,
                            case_id: &row.case_id,
                            letter_id: &row.letter_id,
                            document_sha256: &document,
                            address: &model.recipient_lines(),
                            country: &inputs.invoice.debtor.address.expose().country,
                            registered,
                            return_receipt: registered && settings.return_receipt(row.step),
                            colour: false,
                            duplex: true,
                        },
                        &pdf,
                        &inputs.owner(&row)?,
                    )
                    .await
            }
            ("inbox", _, _) => match store::inbox_put(&self.pool, &row, &document, false).await {
                Ok(id) => Outcome::Sent(id),
                Err(e) => Outcome::Transient(format!("inbox: {e}")),
            },
            (other, _, _) => Outcome::Permanent(format!("unsupported channel {other}")),
        };
        self.record(row, outcome, inputs, &settings, &document)
            .await
    }
}

/// The creditor's copy row [`Dispatcher::record`] inserted when `row` is a debtor letter just
/// sent; `None` otherwise.
fn copy_row(row: &LedgerRow, inputs: &Inputs) -> Option<LedgerRow> {
    if row.recipient != "debtor" || row.state != state::SENT {
        return None;
    }
    let settings = inputs.config.settings.as_ref()?;
    let letter = outcome::copy_letter_id(row);
    Some(outcome::copy_of(row, settings, &letter, row.document.as_deref()?).row())
}

/// A file name from a subject: letters, digits, spaces and dashes.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim().to_owned();
    if out.is_empty() { "letter".into() } else { out }
}
