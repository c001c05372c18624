//! Consolidated letters ("Sammelmahnung"): one ledger row per consolidation (keyed on its first
//! case and `seq = c:{consolidation id}`), one letter listing every member invoice, one RF
//! reference for the total, one creditor copy.
//!
//! **Members** are the consolidation's cases whose stream carries a `dunning.step_reached.v1`
//! with its id (a case the dunning service had to decide alone after a conflict has a letter of
//! its own and is not listed). **Just before sending** every member stream is read: a member
//! settled, paused, disputed or ended meanwhile is dropped and the letter is rendered again
//! without it (a different document), and the dropped member gets a `letter.suppressed.v1` of
//! its own with the reason; when none is left the letter is `suppressed`.
//! `letter.rendered.v1` (with the letter's RF reference) is appended to every member stream left
//! with the version read, in one group commit; `letter.dispatched.v1`, `letter.copy_sent.v1`,
//! `letter.failed.v1` go to every member stream that has the `letter.rendered.v1`.

use super::{Dispatcher, Inputs};
use crate::case_file::CaseFile;
use crate::error::{Error, Result};
use crate::mapping::{self, Member};
use crate::store::{self, LedgerRow, state};
use crate::tenant;
use mahnwerk_domain::{CaseId, EventId, StreamId, TenantId};
use mahnwerk_dunning::consolidate::Consolidation;
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_eventlog::{AppendBatch, ExpectedVersion};
use mahnwerk_letters::events::{LetterRendered, LetterSuppressed};

/// Why a consolidated letter whose members all dropped out is not sent.
pub const NONE_LEFT: &str = "every invoice of the consolidated letter settled, paused or ended";

/// One member case as read from its stream.
#[derive(Debug, Clone)]
pub(super) struct MemberRead {
    pub member: Member,
    pub step_event: EventId,
    pub stream: StreamId,
    pub version: Option<u64>,
    /// Why this member is left out now (settled, paused…), if it is.
    pub suppressed: Option<String>,
    /// The stream has this letter's `letter.rendered.v1`.
    pub rendered: bool,
}

/// A consolidated letter's inputs: the consolidation and its members.
#[derive(Debug, Clone)]
pub(super) struct Consolidated {
    pub consolidation: Consolidation,
    pub members: Vec<MemberRead>,
}

impl Consolidated {
    /// The members the letter lists now (not suppressed), oldest due date first.
    pub fn included(&self) -> Vec<Member> {
        self.members
            .iter()
            .filter(|m| m.suppressed.is_none())
            .map(|m| m.member.clone())
            .collect()
    }

    /// Why nothing is left, when nothing is.
    pub fn none_left(&self) -> Option<String> {
        if self.members.iter().any(|m| m.suppressed.is_none()) {
            return None;
        }
        let reasons: Vec<&str> = self
            .members
            .iter()
            .filter_map(|m| m.suppressed.as_deref())
            .collect();
        Some(match reasons.as_slice() {
            [one] => (*one).to_owned(),
            _ => NONE_LEFT.to_owned(),
        })
    }
}

impl Dispatcher {
    /// Read the consolidation's member streams: their consolidated step, state and version.
    pub(super) async fn consolidated_inputs(&self, row: &LedgerRow, id: &str) -> Result<Inputs> {
        let tenant: TenantId = row
            .tenant
            .parse()
            .map_err(|_| Error::invalid("tenant", "not a tenant id"))?;
        let json = store::consolidation(&self.pool, &row.tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("consolidation {id}")))?;
        let consolidation: Consolidation = serde_json::from_str(&json)
            .map_err(|e| Error::invalid("consolidation", e.to_string()))?;
        let mut members = Vec::new();
        for case_id in &consolidation.cases {
            let case: CaseId = case_id
                .parse()
                .map_err(|_| Error::invalid("case_id", "not a case id"))?;
            let stream = case.stream(&tenant);
            let mut file = CaseFile::default();
            let mut version = None;
            let mut step = None;
            let mut rendered = false;
            let mut from = 1;
            loop {
                let events = self.log.read_stream(&stream, from, 1000).await?;
                let Some(last) = events.last() else { break };
                from = last.version + 1;
                version = Some(last.version);
                for e in &events {
                    file.apply(&e.event_type, &e.payload);
                    if e.event_type == crate::handler::STEP_REACHED {
                        let s: StepReached = serde_json::from_value(e.payload.clone())
                            .map_err(|err| Error::invalid("step", err.to_string()))?;
                        if s.consolidation.as_ref().is_some_and(|c| c.id == id) {
                            step = Some((e.event_id, s));
                        }
                    } else if e.event_type == "letter.rendered.v1"
                        && e.payload.get("letter_id").and_then(|v| v.as_str())
                            == Some(row.letter_id.as_str())
                    {
                        rendered = true;
                    }
                }
                if events.len() < 1000 {
                    break;
                }
            }
            // Not (yet) a member: decided alone, or its append is not visible.
            let Some((step_event, step)) = step else {
                continue;
            };
            let invoice = store::invoice(&self.pool, &row.tenant, case_id)
                .await?
                .ok_or_else(|| Error::NotFound("invoice".into()))?;
            members.push(MemberRead {
                member: Member {
                    case,
                    step,
                    invoice,
                },
                step_event,
                stream,
                version,
                suppressed: file.suppression(),
                rendered,
            });
        }
        members.sort_by(|a, b| {
            let (x, y) = (&a.member.invoice, &b.member.invoice);
            (x.due_date, x.number.as_str()).cmp(&(y.due_date, y.number.as_str()))
        });
        let first = members
            .first()
            .ok_or_else(|| Error::NotFound(format!("no member of consolidation {id} yet")))?;
        let mut step = first.member.step.clone();
        step.template_id = "consolidated_notice".into();
        step.title = consolidation.title.clone();
        let invoice = store::invoice(&self.pool, &row.tenant, &row.case_id)
            .await?
            .unwrap_or_else(|| first.member.invoice.clone());
        let step_event = first.step_event;
        let config = tenant::load(&self.log, &tenant).await?;
        Ok(Inputs {
            tenant,
            step_event,
            step,
            invoice,
            config,
            consolidated: Some(Consolidated {
                consolidation,
                members,
            }),
        })
    }

    /// The check just before sending a consolidated letter: members settled or paused
    /// meanwhile are dropped (the letter is rendered again without them, `row.document`
    /// updated), `Err(reason)`-like `Some(reason)` when none is left; otherwise
    /// `letter.rendered.v1` on every member left, each with the version just read.
    pub(super) async fn check_consolidated(
        &self,
        row: &mut LedgerRow,
        inputs: &mut Inputs,
    ) -> Result<Option<String>> {
        let id = store::consolidation_of_seq(&row.seq)
            .ok_or_else(|| Error::invalid("seq", "not a consolidated letter"))?
            .to_owned();
        for _ in 0..20 {
            *inputs = self.consolidated_inputs(row, &id).await?;
            let Some(c) = inputs.consolidated.clone() else {
                return Err(Error::invalid("seq", "not a consolidated letter"));
            };
            if let Some(reason) = c.none_left() {
                return Ok(Some(reason));
            }
            if row.recipient != "debtor" {
                return Ok(None);
            }
            // The letter as it must go out now: rendered again when a member dropped out.
            let model = inputs.model(row)?;
            let renderer = self.renderers.for_tenant(&inputs.tenant, &inputs.config)?;
            let letter = self.render_pdf(renderer, model).await??;
            let sha = self
                .docs
                .put_owned(&inputs.owner(row)?, bytes::Bytes::from(letter.pdf))
                .await?;
            if row.document.as_deref() != Some(sha.as_str()) {
                store::transition(
                    &self.pool,
                    &row.id,
                    state::RENDERED,
                    state::RENDERED,
                    Some(&sha),
                    None,
                    None,
                    true,
                )
                .await?;
                tracing::info!(letter = %row.letter_id, members = c.included().len(), "consolidated letter rendered again without the members that dropped out");
                row.document = Some(sha.clone());
            }
            let reference = mapping::consolidation_reference(&c.consolidation.id);
            // A member dropped out (settled, paused… since its step) gets its own
            // `letter.suppressed.v1` with the reason, in the same group commit; its id is the
            // one the row's own report would give it, so a later suppression of the whole
            // letter adds nothing to that stream.
            let mut batches: Vec<AppendBatch> = c
                .members
                .iter()
                .filter_map(|m| {
                    let reason = m.suppressed.as_ref()?;
                    let payload = serde_json::to_value(LetterSuppressed {
                        letter_id: row.letter_id.clone(),
                        step: m.member.step.number,
                        reason: reason.clone(),
                    })
                    .map_err(|e| Error::invalid("event", e.to_string()));
                    Some(payload.map(|payload| {
                        AppendBatch {
                            stream: m.stream.clone(),
                            expected: m
                                .version
                                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                            events: vec![self.event(
                                m.step_event,
                                row,
                                "letter.suppressed.v1",
                                payload,
                            )],
                        }
                    }))
                })
                .collect::<Result<_>>()?;
            let rendered: Vec<AppendBatch> = c
                .members
                .iter()
                .filter(|m| m.suppressed.is_none())
                .map(|m| {
                    let payload = serde_json::to_value(LetterRendered {
                        letter_id: row.letter_id.clone(),
                        step: m.member.step.number,
                        kind: mahnwerk_letters::model::LetterKind::ConsolidatedNotice,
                        document_sha256: sha.clone(),
                        letterhead_version: inputs.config.letterhead_version,
                        templates: inputs.config.templates.keys().cloned().collect(),
                        draft: false,
                        payment_reference: Some(reference.clone()).filter(|r| !r.is_empty()),
                    })
                    .map_err(|e| Error::invalid("event", e.to_string()))?;
                    let mut ev = self.event(m.step_event, row, "letter.rendered.v1", payload);
                    // Per letter and document: re-rendered without a member, it is announced
                    // again to the members still in it.
                    ev.event_id = mahnwerk_eventlog::derived_event_id(
                        m.step_event,
                        &format!("letters:rendered:{}:{sha}", row.letter_id),
                        0,
                    );
                    Ok(AppendBatch {
                        stream: m.stream.clone(),
                        expected: m
                            .version
                            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                        events: vec![ev],
                    })
                })
                .collect::<Result<_>>()?;
            batches.extend(rendered);
            let results = self.log.append_many(batches).await?;
            let mut again = false;
            for r in results {
                match r {
                    Ok(_) | Err(mahnwerk_eventlog::Error::DuplicateEvent(_)) => {}
                    Err(mahnwerk_eventlog::Error::Conflict { .. }) => again = true,
                    Err(e) => return Err(e.into()),
                }
            }
            if !again {
                return Ok(None);
            }
        }
        Err(Error::Conflict)
    }

    /// Where a consolidated row's final state is reported: every member stream with this
    /// letter's `letter.rendered.v1`, else (suppressed or failed before it) every member.
    pub(super) async fn consolidated_targets(
        &self,
        row: &LedgerRow,
        id: &str,
    ) -> Result<Vec<(StreamId, EventId, u32)>> {
        let inputs = self.consolidated_inputs(row, id).await?;
        let members = inputs.consolidated.map(|c| c.members).unwrap_or_default();
        let rendered: Vec<&MemberRead> = members.iter().filter(|m| m.rendered).collect();
        let chosen: Vec<&MemberRead> = if rendered.is_empty() {
            members.iter().collect()
        } else {
            rendered
        };
        Ok(chosen
            .into_iter()
            .map(|m| (m.stream.clone(), m.step_event, m.member.step.number))
            .collect())
    }
}
