//! The console's pure core: what one case looks like to a creditor (stage, amounts, last letter,
//! payments), folded from the case events, and the overview's arithmetic (ageing buckets, DSO).
//! No IO: the projection stores what [`CaseView::apply`] computes.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stages the overview counts. `Overdue` is never stored: an `Open` case past its due date
/// is overdue as of the day asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Open,
    Overdue,
    /// A dunning step was reached (`step` says which).
    Dunning,
    /// Dunning is over, waiting for (or held before) a hand-over.
    Escalated,
    HandedOver,
    Settled,
    WrittenOff,
    Cancelled,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Open => "open",
            Stage::Overdue => "overdue",
            Stage::Dunning => "dunning",
            Stage::Escalated => "escalated",
            Stage::HandedOver => "handed_over",
            Stage::Settled => "settled",
            Stage::WrittenOff => "written_off",
            Stage::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "open" => Stage::Open,
            "overdue" => Stage::Overdue,
            "dunning" => Stage::Dunning,
            "escalated" => Stage::Escalated,
            "handed_over" => Stage::HandedOver,
            "settled" => Stage::Settled,
            "written_off" => Stage::WrittenOff,
            "cancelled" => Stage::Cancelled,
            _ => return None,
        })
    }

    /// No more money is expected (the case is out of the receivables).
    pub fn closed(self) -> bool {
        matches!(self, Stage::Settled | Stage::WrittenOff | Stage::Cancelled)
    }
}

/// A letter that went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastLetter {
    pub step: u32,
    pub sha256: String,
    pub on: NaiveDate,
}

/// One case as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseView {
    pub invoice_number: String,
    pub debtor_name: String,
    /// The debtor's customer number, else its name: groups a debtor's invoices.
    pub debtor_key: String,
    pub currency: String,
    pub gross_minor: i64,
    pub open_minor: i64,
    pub paid_minor: i64,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub stage: Stage,
    /// Last dunning step reached (0: none).
    pub step: u32,
    pub step_title: String,
    pub paused: bool,
    pub disputed: bool,
    pub last_letter: Option<LastLetter>,
    pub last_payment_on: Option<NaiveDate>,
    /// Days after the due date the case was settled (negative: early).
    pub settled_days_late: Option<i64>,
    /// Promises to pay recorded (`dunning.paused.v1` of kind `promise_to_pay`).
    pub promises: u32,
    /// Promises the debtor did not keep (`dunning.resumed.v1`, `why.reason: promise_missed`).
    #[serde(default)]
    pub broken_promises: u32,
    /// The pauses in force, by kind (`case_hold`, `debtor_hold`, `dispute`, `promise_to_pay`,
    /// `payment_plan`): only a case hold is released with ResumeCase.
    #[serde(default)]
    pub holds: Vec<String>,
}

/// The kind of a `dunning.paused.v1` payload's `pause` as `dunning.resumed.v1` names it.
fn pause_kind(pause: &Value) -> String {
    match pause.get("kind").and_then(Value::as_str).unwrap_or("") {
        "hold" => match pause.get("scope").and_then(Value::as_str) {
            Some("debtor") => "debtor_hold".into(),
            _ => "case_hold".into(),
        },
        "dispute_upheld" => "dispute".into(),
        k => k.to_owned(),
    }
}

/// A payment the overview counts (payments in the last 30 days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFact {
    pub payment_id: String,
    /// Negative for a reversal.
    pub amount_minor: i64,
    pub on: NaiveDate,
}

fn money_minor(v: &Value) -> Option<i64> {
    v.get("minor").and_then(Value::as_i64)
}

fn date(v: &Value) -> Option<NaiveDate> {
    v.as_str().and_then(|s| s.parse().ok())
}

impl CaseView {
    /// The view after `invoice.issued.v1`.
    pub fn issued(payload: &Value) -> Result<CaseView, String> {
        let inv = payload
            .get("invoice")
            .ok_or("invoice.issued.v1 without invoice")?;
        let field = |k: &str| inv.get(k).ok_or_else(|| format!("invoice.{k} missing"));
        let debtor = field("debtor")?;
        let name = debtor
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let key = debtor
            .get("customer_number")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| name.clone(), str::to_owned);
        let gross = field("gross")?
            .as_i64()
            .ok_or("invoice.gross: not an integer")?;
        Ok(CaseView {
            invoice_number: field("number")?.as_str().unwrap_or_default().to_owned(),
            debtor_name: name,
            debtor_key: key,
            currency: field("currency")?.as_str().unwrap_or_default().to_owned(),
            gross_minor: gross,
            open_minor: gross,
            paid_minor: 0,
            issue_date: date(field("issue_date")?).ok_or("invoice.issue_date: not a date")?,
            due_date: date(field("due_date")?).ok_or("invoice.due_date: not a date")?,
            stage: Stage::Open,
            step: 0,
            step_title: String::new(),
            paused: false,
            disputed: false,
            last_letter: None,
            last_payment_on: None,
            settled_days_late: None,
            promises: 0,
            broken_promises: 0,
            holds: Vec::new(),
        })
    }

    /// The stage a reopened case falls back to.
    fn active_stage(&self) -> Stage {
        if self.step > 0 {
            Stage::Dunning
        } else {
            Stage::Open
        }
    }

    /// Fold one later case event in; returns the payment it records, if any. Unknown types
    /// change nothing (new services may add facts).
    pub fn apply(
        &mut self,
        event_type: &str,
        payload: &Value,
        occurred_on: NaiveDate,
    ) -> Option<PaymentFact> {
        let ty = event_type.rsplit_once('.').map_or(event_type, |(t, _)| t);
        match ty {
            "payment.applied" => {
                let amount = payload.get("amount").and_then(money_minor).unwrap_or(0);
                let on = payload
                    .get("booked_on")
                    .and_then(date)
                    .unwrap_or(occurred_on);
                self.paid_minor += amount;
                if let Some(open) = payload.get("open_after").and_then(money_minor) {
                    self.open_minor = open;
                }
                self.last_payment_on = Some(on);
                return Some(PaymentFact {
                    payment_id: payload
                        .get("payment_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    amount_minor: amount,
                    on,
                });
            }
            "payment.reversed" => {
                let amount = payload.get("amount").and_then(money_minor).unwrap_or(0);
                let on = payload
                    .get("reversed_on")
                    .and_then(date)
                    .unwrap_or(occurred_on);
                self.paid_minor -= amount;
                if let Some(open) = payload.get("open_after").and_then(money_minor) {
                    self.open_minor = open;
                }
                if self.stage == Stage::Settled {
                    self.stage = self.active_stage();
                    self.settled_days_late = None;
                }
                let id = payload
                    .get("payment_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Some(PaymentFact {
                    payment_id: format!("{id}:reversed"),
                    amount_minor: -amount,
                    on,
                });
            }
            "invoice.credited" => {
                if let Some(open) = payload.get("open_after").and_then(money_minor) {
                    self.open_minor = open;
                }
            }
            "invoice.settled" | "dunning.settled" => {
                let on = payload
                    .get("settled_on")
                    .or_else(|| payload.get("on"))
                    .and_then(date)
                    .unwrap_or(occurred_on);
                if self.stage != Stage::Settled {
                    self.settled_days_late = Some((on - self.due_date).num_days());
                }
                self.stage = Stage::Settled;
            }
            "dunning.reopened" if self.stage == Stage::Settled => {
                self.stage = self.active_stage();
                self.settled_days_late = None;
            }
            "invoice.cancelled" | "dunning.cancelled" => self.stage = Stage::Cancelled,
            "dunning.written_off" => self.stage = Stage::WrittenOff,
            "invoice.disputed" => self.disputed = true,
            "dispute.resolved" => self.disputed = false,
            "due_date.extended" => {
                if let Some(d) = payload.get("new_due_date").and_then(date) {
                    self.due_date = d;
                }
            }
            "dunning.paused" => {
                let kind = pause_kind(payload.get("pause").unwrap_or(&Value::Null));
                if kind == "promise_to_pay" {
                    self.promises += 1;
                }
                if !self.holds.contains(&kind) {
                    self.holds.push(kind);
                }
                self.paused = true;
            }
            "dunning.resumed" => {
                let kind = payload.get("pause").and_then(Value::as_str).unwrap_or("");
                if payload
                    .get("why")
                    .and_then(|w| w.get("reason"))
                    .and_then(Value::as_str)
                    == Some("promise_missed")
                {
                    self.broken_promises += 1;
                }
                self.holds.retain(|h| h != kind);
                self.paused = !self.holds.is_empty();
            }
            "dunning.step_reached" => {
                self.step = payload
                    .get("number")
                    .and_then(Value::as_u64)
                    .map_or(self.step, |n| u32::try_from(n).unwrap_or(u32::MAX));
                self.step_title = payload
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !self.stage.closed() {
                    self.stage = Stage::Dunning;
                }
            }
            "dunning.escalated" if !self.stage.closed() => self.stage = Stage::Escalated,
            "case.handed_over" => self.stage = Stage::HandedOver,
            "case.closed" => {
                self.stage = match payload.get("outcome").and_then(Value::as_str) {
                    Some("paid") => Stage::Settled,
                    _ => Stage::WrittenOff,
                };
            }
            "letter.dispatched" => {
                let sha = payload
                    .get("document_sha256")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let step = payload.get("step").and_then(Value::as_u64).unwrap_or(0);
                self.last_letter = Some(LastLetter {
                    step: u32::try_from(step).unwrap_or(0),
                    sha256: sha.to_owned(),
                    on: occurred_on,
                });
            }
            _ => {}
        }
        None
    }

    /// A case hold (PauseCase) is in force: ResumeCase releases it.
    pub fn held(&self) -> bool {
        self.holds.iter().any(|h| h == "case_hold")
    }

    /// The stage as of `today` (an open case past its due date is overdue).
    pub fn stage_on(&self, today: NaiveDate) -> Stage {
        if self.stage == Stage::Open && self.due_date < today {
            Stage::Overdue
        } else {
            self.stage
        }
    }
}

/// Days since 1970-01-01: the projection stores dates as integers so every backend compares and
/// subtracts them the same way.
pub fn day_number(d: NaiveDate) -> i64 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

pub fn from_day_number(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(n)
}

/// Ageing bucket of an open case `days_overdue` past due: 0 (0–30), 1 (31–60), 2 (61–90),
/// 3 (90+). The SQL of the overview uses the same bounds ([`AGEING_BOUNDS`]).
pub fn ageing_bucket(days_overdue: i64) -> usize {
    AGEING_BOUNDS
        .iter()
        .position(|b| days_overdue <= *b)
        .unwrap_or(AGEING_BOUNDS.len())
}

/// Upper bounds (inclusive) of the first three ageing buckets.
pub const AGEING_BOUNDS: [i64; 3] = [30, 60, 90];

/// Days sales outstanding over `period_days`: open receivables / sales of the period × days,
/// rounded half up; `None` without sales.
pub fn dso(open_minor: i64, sales_minor: i64, period_days: i64) -> Option<i64> {
    if sales_minor <= 0 {
        return None;
    }
    let num = i128::from(open_minor.max(0)) * i128::from(period_days);
    let den = i128::from(sales_minor);
    i64::try_from((2 * num + den) / (2 * den)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn issued() -> CaseView {
        CaseView::issued(
            &json!({"invoice": {"number": "RE-1", "issue_date": "2026-03-01",
            "due_date": "2026-03-15", "currency": "EUR", "net": 10000, "tax": 1900, "gross": 11900,
            "debtor": {"name": "Erika", "customer_number": "K-1"}}}),
        )
        .unwrap()
    }

    #[test]
    fn a_case_moves_through_dunning_to_settled() {
        let mut c = issued();
        assert_eq!(c.stage_on(d("2026-03-15")), Stage::Open);
        assert_eq!(c.stage_on(d("2026-03-16")), Stage::Overdue);
        c.apply(
            "dunning.step_reached.v1",
            &json!({"number": 1, "title": "Zahlungserinnerung"}),
            d("2026-03-20"),
        );
        assert_eq!((c.stage, c.step), (Stage::Dunning, 1));
        c.apply(
            "letter.dispatched.v1",
            &json!({"step": 1, "document_sha256": "ab"}),
            d("2026-03-20"),
        );
        assert_eq!(c.last_letter.as_ref().unwrap().step, 1);
        let p = c.apply(
            "payment.applied.v1",
            &json!({"payment_id": "e:c", "amount": {"minor": 11900},
            "booked_on": "2026-03-25", "open_after": {"minor": 0}}),
            d("2026-03-25"),
        );
        assert_eq!(p.unwrap().amount_minor, 11900);
        c.apply(
            "invoice.settled.v1",
            &json!({"settled_on": "2026-03-25"}),
            d("2026-03-25"),
        );
        assert_eq!(
            (c.stage, c.open_minor, c.settled_days_late),
            (Stage::Settled, 0, Some(10))
        );
        let r = c.apply(
            "payment.reversed.v1",
            &json!({"payment_id": "e:c", "amount": {"minor": 11900},
            "reversed_on": "2026-03-28", "open_after": {"minor": 11900}}),
            d("2026-03-28"),
        );
        assert_eq!(r.unwrap().amount_minor, -11900);
        assert_eq!((c.stage, c.open_minor), (Stage::Dunning, 11900));
    }

    #[test]
    fn pauses_are_tracked_by_kind_and_promises_counted_from_the_dunning_events() {
        let mut c = issued();
        let on = d("2026-03-26");
        c.apply(
            "dunning.paused.v1",
            &json!({"pause": {"kind": "promise_to_pay", "until": "2026-04-10",
            "amount": {"minor": 11900, "currency": "EUR"}, "since": "2026-03-26"}, "paused_on": "2026-03-26"}),
            on,
        );
        c.apply(
            "dunning.paused.v1",
            &json!({"pause": {"kind": "hold", "scope": "case", "reason": "x", "until": null}, "paused_on": "2026-03-26"}),
            on,
        );
        assert_eq!((c.promises, c.paused, c.held()), (1, true, true));
        c.apply(
            "dunning.resumed.v1",
            &json!({"pause": "case_hold", "why": {"reason": "released"}, "resumed_on": "2026-03-27"}),
            on,
        );
        assert_eq!((c.paused, c.held()), (true, false));
        c.apply(
            "dunning.resumed.v1",
            &json!({"pause": "promise_to_pay", "why": {"reason": "promise_missed",
            "promised": {"minor": 11900, "currency": "EUR"}, "paid": {"minor": 0, "currency": "EUR"}},
            "resumed_on": "2026-04-11"}),
            on,
        );
        assert_eq!((c.paused, c.broken_promises, c.promises), (false, 1, 1));
        // A view stored before these fields existed still reads.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("holds");
        old.as_object_mut().unwrap().remove("broken_promises");
        let back: CaseView = serde_json::from_value(old).unwrap();
        assert!(back.holds.is_empty());
    }

    #[test]
    fn a_bad_issued_event_is_an_error_naming_the_field() {
        let e = CaseView::issued(&json!({"invoice": {"number": "x"}})).unwrap_err();
        assert!(e.contains("invoice."), "{e}");
    }

    #[test]
    fn dso_is_open_over_sales_times_days() {
        assert_eq!(dso(50_000, 100_000, 90), Some(45));
        assert_eq!(dso(1, 3, 1), Some(0));
        assert_eq!(dso(2, 3, 1), Some(1));
        assert_eq!(dso(10, 0, 90), None);
    }

    proptest! {
        #[test]
        fn ageing_buckets_are_monotone_and_bounded(a in -10i64..400, b in -10i64..400) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(ageing_bucket(lo) <= ageing_bucket(hi));
            prop_assert!(ageing_bucket(hi) <= 3);
            prop_assert_eq!(ageing_bucket(hi) == 3, hi > 90);
        }

        #[test]
        fn day_numbers_round_trip(n in -1000i64..100_000) {
            prop_assert_eq!(day_number(from_day_number(n)), n);
        }
    }
}
