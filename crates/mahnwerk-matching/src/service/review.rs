//! The review queue: matching an entry by hand to one or several invoices, and undoing a match.

use super::*;

impl Matching {
    pub(super) async fn match_manually(
        &self,
        tenant: &TenantId,
        r: &pb::MatchManuallyRequest,
        metadata: &Metadata,
    ) -> Result<Processed> {
        let stream = StreamId::new(tenant, ENTRY_KIND, &r.entry_id);
        let state = fold_entry(&read_all(&self.log, &stream).await?)?;
        let Some(received) = &state.received else {
            return Err(Error::NotFound(format!("entry {} not found", r.entry_id)));
        };
        let amount = received.amount;
        if amount.minor <= 0 {
            return Err(Error::Rejected(
                "only credits can be matched to invoices".into(),
            ));
        }
        check_request_id(&r.request_id)?;
        if r.allocations.is_empty() {
            return Err(Error::invalid("allocations", "at least one required"));
        }
        let mut parts = Vec::new();
        let mut sum = 0i64;
        for (i, a) in r.allocations.iter().enumerate() {
            if a.amount_minor <= 0 {
                return Err(Error::invalid(
                    format!("allocations[{i}].amount_minor"),
                    "must be positive",
                ));
            }
            if parts.iter().any(|p: &ManualPart| p.case_id == a.case_id) {
                return Err(Error::invalid(
                    format!("allocations[{i}].case_id"),
                    "named twice",
                ));
            }
            sum += a.amount_minor;
            parts.push(ManualPart {
                case_id: a.case_id.clone(),
                amount: Money::new(a.amount_minor, amount.currency),
            });
        }
        if sum > amount.minor {
            return Err(Error::invalid(
                "allocations",
                format!("add up to {sum}, more than the entry's {}", amount.minor),
            ));
        }
        if let Some(last) = parts.last_mut() {
            last.amount.minor += amount.minor - sum;
        }
        if let Some(prior) = state.requests.get(&r.request_id) {
            return match prior {
                PriorRequest::Manual { allocations, note }
                    if *allocations == parts && *note == r.note =>
                {
                    Ok(manual_result(&r.entry_id, &parts))
                }
                _ => Err(request_id_reused()),
            };
        }
        if state.not_ours {
            return Err(Error::Rejected("entry was marked as not ours".into()));
        }
        let live = state.live_payments();
        if !live.is_empty() {
            // Idempotent: the same manual match again answers as before.
            if let Some(m) = state.manual.last()
                && m.allocations == parts
            {
                return Ok(manual_result(&r.entry_id, &parts));
            }
            return Err(Error::Rejected(
                "entry is applied already; UndoMatch first".into(),
            ));
        }
        // Every case must exist, be open and in the entry's currency before anything is recorded.
        for (i, part) in parts.iter().enumerate() {
            let field = format!("allocations[{i}].case_id");
            let case: mahnwerk_domain::CaseId = part
                .case_id
                .parse()
                .map_err(|_| Error::invalid(&field, "not a case id"))?;
            let bal = crate::apply::fold_case(&read_all(&self.log, &case.stream(tenant)).await?);
            match (&bal.open, &bal.closed) {
                (None, _) => return Err(Error::invalid(&field, "no such case")),
                (_, Some(why)) => {
                    return Err(Error::Rejected(format!("case {} is {why}", part.case_id)));
                }
                (Some(open), None) if open.currency != amount.currency => {
                    return Err(Error::invalid(
                        &field,
                        format!(
                            "case is in {}, the entry in {}",
                            open.currency, amount.currency
                        ),
                    ));
                }
                _ => {}
            }
        }
        let n = state.manual.len();
        let ev = EntryEvent::MatchedManually(MatchedManually {
            entry_id: r.entry_id.clone(),
            allocations: parts.clone(),
            note: r.note.clone(),
            request_id: r.request_id.clone(),
        });
        self.append_entry(&stream, state.version, &[ev], metadata)
            .await?;
        let booked_on = received
            .booked_on
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        for p in &parts {
            apply_to_case(
                &self.log,
                tenant,
                &p.case_id,
                &manual_payment_id(&r.entry_id, &p.case_id, n),
                &r.entry_id,
                booked_on,
                Rule::Manual.as_str(),
                &Plan::Manual(p.amount),
                None,
                metadata,
            )
            .await?;
        }
        Ok(manual_result(&r.entry_id, &parts))
    }

    pub(super) async fn undo(
        &self,
        tenant: &TenantId,
        entry: &str,
        reason: &str,
        request_id: &str,
        metadata: &Metadata,
    ) -> Result<Vec<String>> {
        let stream = StreamId::new(tenant, ENTRY_KIND, entry);
        let state = fold_entry(&read_all(&self.log, &stream).await?)?;
        let Some(received) = &state.received else {
            return Err(Error::NotFound(format!("entry {entry} not found")));
        };
        if let Some(prior) = state.requests.get(request_id) {
            return match prior {
                PriorRequest::Undo {
                    payment_ids,
                    reason: was,
                } if was == reason => Ok(payment_ids.clone()),
                _ => Err(request_id_reused()),
            };
        }
        let live = state.live_payments();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let today = chrono::Utc::now().date_naive();
        let mut undone = Vec::new();
        for (pid, case) in &live {
            reverse_on_case(
                &self.log,
                tenant,
                case,
                pid,
                today,
                &format!("undone: {reason}"),
                None,
                metadata,
            )
            .await?;
            undone.push(pid.clone());
        }
        let events = [
            EntryEvent::MatchUndone(MatchUndone {
                entry_id: entry.to_owned(),
                payment_ids: undone.clone(),
                reason: reason.to_owned(),
                request_id: request_id.to_owned(),
            }),
            EntryEvent::Unmatched(UnmatchedPayload {
                entry_id: entry.to_owned(),
                amount: received.amount,
                booked_on: received.booked_on,
                reason: format!("match undone: {reason}"),
                candidates: live.iter().map(|(_, c)| c.clone()).collect(),
                payer: received.payer.clone(),
            }),
        ];
        self.append_entry(&stream, state.version, &events, metadata)
            .await?;
        Ok(undone)
    }
}

fn manual_result(entry_id: &str, parts: &[ManualPart]) -> Processed {
    Processed {
        entry_id: entry_id.to_owned(),
        decision: RecordedDecision {
            outcome: if parts.len() > 1 {
                Outcome::Split
            } else {
                Outcome::Applied
            },
            rule: Rule::Manual,
            confidence: 100,
            reason: "matched by an operator".into(),
            allocations: Vec::new(),
            overpayment: None,
            candidates: parts.iter().map(|p| p.case_id.clone()).collect(),
        },
        duplicate: false,
    }
}
