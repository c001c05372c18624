//! Recording what a channel call came to: the ledger row's transition (sent, failed with a
//! fallback to post, retried, unknown) in one transaction with what it implies.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The letter id of the creditor's copy of debtor letter `row`.
pub(super) fn copy_letter_id(row: &LedgerRow) -> String {
    store::letter_id(&row.tenant, &row.case_id, row.step, "creditor", &row.seq)
}

/// The creditor's copy of debtor letter `row` once sent: by the tenant's `copy_to`, with the
/// letter's document, ready to send (`rendered`).
pub(super) fn copy_of<'a>(
    row: &'a LedgerRow,
    settings: &mahnwerk_letters::events::LetterSettings,
    letter_id: &'a str,
    document: &'a str,
) -> NewRow<'a> {
    NewRow {
        tenant: &row.tenant,
        case_id: &row.case_id,
        step: row.step,
        channel: match settings.copy_to {
            CopyTo::Email { .. } => "email",
            CopyTo::Inbox => "inbox",
        },
        recipient: "creditor",
        seq: &row.seq,
        letter_id,
        state: state::RENDERED,
        document: Some(document),
    }
}

impl Dispatcher {
    pub(super) async fn record(
        &self,
        mut row: LedgerRow,
        outcome: Outcome,
        inputs: &Inputs,
        settings: &mahnwerk_letters::events::LetterSettings,
        document: &str,
    ) -> Result<LedgerRow> {
        match outcome {
            Outcome::Sent(provider) => {
                let mut tx = self.pool.begin().await?;
                store::transition(
                    &mut *tx,
                    &row.id,
                    state::SENDING,
                    state::SENT,
                    None,
                    Some(&provider),
                    None,
                    false,
                )
                .await?;
                if row.recipient == "debtor" {
                    let copy_letter = copy_letter_id(&row);
                    let copy = copy_of(&row, settings, &copy_letter, document);
                    store::insert_row(&mut *tx, &copy).await?;
                }
                tx.commit().await?;
                tracing::info!(letter = %row.letter_id, channel = %row.channel, recipient = %row.recipient, "letter sent");
                metrics::counter!("mahnwerk_letters_sent_total", "channel" => row.channel.clone())
                    .increment(1);
                row.state = state::SENT.into();
                row.provider_id = Some(provider);
            }
            Outcome::Permanent(reason) => {
                let fallback = row.recipient == "debtor"
                    && row.channel == "email"
                    && settings.email_fallback_to_post;
                let mut tx = self.pool.begin().await?;
                store::transition(
                    &mut *tx,
                    &row.id,
                    state::SENDING,
                    state::FAILED,
                    None,
                    None,
                    Some(&reason),
                    false,
                )
                .await?;
                if fallback {
                    // A registered letter is rendered again with its endorsement.
                    let registered = settings.is_registered(row.step);
                    store::insert_row(
                        &mut *tx,
                        &NewRow {
                            tenant: &row.tenant,
                            case_id: &row.case_id,
                            step: row.step,
                            channel: "post",
                            recipient: "debtor",
                            seq: &row.seq,
                            letter_id: &row.letter_id,
                            state: if registered {
                                state::INTENT
                            } else {
                                state::RENDERED
                            },
                            document: (!registered).then_some(document),
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                tracing::warn!(letter = %row.letter_id, channel = %row.channel, reason = %reason, fallback, "letter refused");
                row.state = state::FAILED.into();
                row.reason = Some(reason);
            }
            Outcome::Transient(reason) => {
                let attempts = row.attempts + 1;
                if attempts >= MAX_ATTEMPTS {
                    store::transition(
                        &self.pool,
                        &row.id,
                        state::SENDING,
                        state::FAILED,
                        None,
                        None,
                        Some(&reason),
                        false,
                    )
                    .await?;
                    row.state = state::FAILED.into();
                    row.reason = Some(reason);
                } else {
                    let pause = self.retry_backoff * attempts;
                    let next =
                        store::now_ms() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
                    store::retry_later(&self.pool, &row.id, attempts, next, &reason).await?;
                    tracing::warn!(letter = %row.letter_id, attempts, reason = %reason, "letter send failed transiently, retrying");
                    row.state = "retry".into();
                    row.reported = true;
                    return Ok(row);
                }
            }
            Outcome::Unknown(reason) => {
                store::transition(
                    &self.pool,
                    &row.id,
                    state::SENDING,
                    state::UNKNOWN,
                    None,
                    None,
                    Some(&reason),
                    false,
                )
                .await?;
                tracing::error!(letter = %row.letter_id, channel = %row.channel, "letter outcome unknown, flagged for review");
                row.state = state::UNKNOWN.into();
                row.reason = Some(reason);
            }
        }
        row.reported = false;
        let _ = inputs;
        Ok(row)
    }
}
