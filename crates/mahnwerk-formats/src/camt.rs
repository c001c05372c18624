//! ISO 20022 camt.052 (account report), camt.053 (statement) and camt.054 (notification), every
//! version from `.001.02` on, including the German DK variants (`Prtry` codes `NTRF+168+00931`).
//!
//! [`CamtReader`] is a pull parser: it holds one `Ntry` at a time, so memory stays flat whatever
//! the file size. Mapping rules:
//! - the amount's sign comes from `CdtDbtInd` (debits negative), also for reversals (`RvslInd`),
//!   whose indicator already describes the reversing booking;
//! - a batch entry with several `TxDtls` is split into one [`Entry`] per detail when every detail
//!   has an amount in the entry's currency and they add up to the entry; otherwise the entry stays
//!   whole and [`BatchInfo::split`] is `false`;
//! - several `Ustrd` lines are joined without a separator when a line ends or starts with a space
//!   or is cut at a fixed width (German banks cut at 27, 35, 70 or 140 characters), else with one
//!   space;
//! - the counterparty is the debtor of a credit and the creditor of a debit, except for returns
//!   (`RtrInf`) where it is the original debtor;
//! - opening balance `OPBD`, else `PRCD`; closing balance `CLBD`, else the last `ITBD`.

use crate::error::{Error, Position, Result};
use crate::statement::{
    Balance, BatchInfo, Counterparty, Entry, ParseOptions, SourceFormat, StatementEnd,
    StatementHeader, StatementItem, Totals, iso_date,
};
use crate::xml::{Ev, Node, Utf8Input, XmlLimits, XmlStream};
use mahnwerk_domain::{Currency, Money};
use std::collections::VecDeque;
use std::io::Read;

struct Current {
    header: StatementHeader,
    emitted: bool,
    totals: Totals,
    closing_candidates: (Option<Balance>, Option<Balance>),
    opening_candidates: (Option<Balance>, Option<Balance>),
}

/// Streaming camt reader: an iterator of [`StatementItem`]s.
pub struct CamtReader<R: Read> {
    stream: XmlStream<Utf8Input<R>>,
    options: ParseOptions,
    queue: VecDeque<StatementItem>,
    format: Option<SourceFormat>,
    version: String,
    message_id: Option<String>,
    current: Option<Current>,
    done: bool,
}

impl<R: Read> CamtReader<R> {
    pub fn new(input: R, options: ParseOptions) -> Result<Self> {
        Self::with_limits(input, options, XmlLimits::default())
    }

    pub fn with_limits(input: R, options: ParseOptions, limits: XmlLimits) -> Result<Self> {
        let input = Utf8Input::new(input, limits.max_event_bytes)?;
        Ok(Self {
            stream: XmlStream::new(input, limits),
            options,
            queue: VecDeque::new(),
            format: None,
            version: String::new(),
            message_id: None,
            current: None,
            done: false,
        })
    }

    fn step(&mut self) -> Result<()> {
        match self.stream.next()? {
            Ev::Eof => {
                if self.format.is_none() {
                    return Err(Error::Unsupported("empty document, no camt message".into()));
                }
                self.done = true;
            }
            Ev::Text(_) => {}
            Ev::End => {
                if self.stream.depth() == 2 && self.current.is_some() {
                    self.finish_statement();
                }
            }
            Ev::Start(tag) => match self.stream.depth() {
                1 => {
                    if tag.name != "Document" {
                        return Err(Error::Unsupported(format!(
                            "root element <{}> is not a camt Document",
                            tag.name
                        )));
                    }
                    let ns = self.stream.root_namespace.clone().unwrap_or_default();
                    self.version = ns
                        .find("camt.")
                        .map(|i| ns[i..].trim_end_matches(".xsd").to_owned())
                        .unwrap_or_default();
                }
                2 => {
                    self.format = Some(match tag.name.as_str() {
                        "BkToCstmrAcctRpt" => SourceFormat::Camt052,
                        "BkToCstmrStmt" => SourceFormat::Camt053,
                        "BkToCstmrDbtCdtNtfctn" => SourceFormat::Camt054,
                        other => {
                            return Err(Error::Unsupported(format!(
                                "<{other}> is not a camt.052/053/054 message"
                            )));
                        }
                    });
                    if self.version.is_empty() {
                        self.version = match self.format {
                            Some(SourceFormat::Camt052) => "camt.052",
                            Some(SourceFormat::Camt054) => "camt.054",
                            _ => "camt.053",
                        }
                        .into();
                    }
                }
                3 => match tag.name.as_str() {
                    "Stmt" | "Rpt" | "Ntfctn" => {
                        let format = self.format.unwrap_or(SourceFormat::Camt053);
                        self.current = Some(Current {
                            header: StatementHeader {
                                format,
                                version: self.version.clone(),
                                message_id: self.message_id.clone(),
                                statement_id: None,
                                sequence: None,
                                account_iban: None,
                                account: None,
                                currency: None,
                                opening_balance: None,
                                closing_balance: None,
                                line: tag.line,
                            },
                            emitted: false,
                            totals: Totals::default(),
                            closing_candidates: (None, None),
                            opening_candidates: (None, None),
                        });
                    }
                    _ => {
                        let node = self.stream.read_subtree(tag)?;
                        if node.name == "GrpHdr" {
                            self.message_id = node.text_at("MsgId").map(str::to_owned);
                        }
                    }
                },
                4 if self.current.is_some() => {
                    let node = self.stream.read_subtree(tag)?;
                    if node.name == "Ntry" {
                        let entries = self.map_entry(&node)?;
                        if let (Some(cur), Some(first)) = (&mut self.current, entries.first())
                            && cur.header.currency.is_none()
                            && cur.opening_candidates.0.is_none()
                            && cur.opening_candidates.1.is_none()
                        {
                            cur.header.currency = Some(first.amount.currency);
                        }
                        self.emit_header();
                        if let Some(cur) = &mut self.current {
                            for e in entries {
                                cur.totals.add(&e);
                                self.queue.push_back(StatementItem::Entry(Box::new(e)));
                            }
                        }
                    } else {
                        self.apply_header(&node)?;
                    }
                }
                _ => {
                    // Anything else (unknown extension content): read and drop, bounded.
                    self.stream.read_subtree(tag)?;
                }
            },
        }
        Ok(())
    }

    fn apply_header(&mut self, node: &Node) -> Result<()> {
        let lenient = self.options.lenient_dates;
        let Some(cur) = &mut self.current else {
            return Ok(());
        };
        if cur.emitted {
            return Ok(());
        }
        let h = &mut cur.header;
        match node.name.as_str() {
            "Id" => h.statement_id = Some(node.text.trim().to_owned()),
            "ElctrncSeqNb" => h.sequence = Some(node.text.trim().to_owned()),
            "LglSeqNb" if h.sequence.is_none() => h.sequence = Some(node.text.trim().to_owned()),
            "Acct" => {
                h.account_iban = node.text_at("Id/IBAN").map(str::to_owned);
                h.account = node.text_any(&["Id/IBAN", "Id/Othr/Id"]).map(str::to_owned);
                if let Some(c) = node.text_at("Ccy") {
                    h.currency = Some(currency(c, || pos(node, "Acct/Ccy"))?);
                }
            }
            "Bal" => {
                let kind = node
                    .text_any(&["Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry"])
                    .unwrap_or_default()
                    .to_owned();
                let amount = signed_amount(node, "Amt", "CdtDbtInd")?;
                let mut warnings = Vec::new();
                let date = match node.text_any(&["Dt/Dt", "Dt/DtTm"]) {
                    Some(d) => iso_date(d, || pos(node, "Bal/Dt"), lenient, &mut warnings)?,
                    None => None,
                };
                let bal = Balance {
                    amount,
                    date,
                    kind: kind.clone(),
                };
                match kind.as_str() {
                    "OPBD" => cur.opening_candidates.0 = Some(bal),
                    "PRCD" => cur.opening_candidates.1 = Some(bal),
                    "CLBD" => cur.closing_candidates.0 = Some(bal),
                    "ITBD" => cur.closing_candidates.1 = Some(bal),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn emit_header(&mut self) {
        let Some(cur) = &mut self.current else { return };
        if cur.emitted {
            return;
        }
        cur.emitted = true;
        let h = &mut cur.header;
        h.opening_balance = cur
            .opening_candidates
            .0
            .take()
            .or(cur.opening_candidates.1.take());
        h.closing_balance = cur
            .closing_candidates
            .0
            .take()
            .or(cur.closing_candidates.1.take());
        if h.currency.is_none() {
            h.currency = h.opening_balance.as_ref().map(|b| b.amount.currency);
        }
        cur.totals.currency = h.currency;
        self.queue
            .push_back(StatementItem::Header(Box::new(h.clone())));
    }

    fn finish_statement(&mut self) {
        self.emit_header();
        if let Some(cur) = self.current.take() {
            let end: StatementEnd = cur.totals.finish(
                cur.header.opening_balance.as_ref(),
                cur.header.closing_balance.clone(),
            );
            self.queue.push_back(StatementItem::End(Box::new(end)));
        }
    }

    fn map_entry(&self, ntry: &Node) -> Result<Vec<Entry>> {
        let lenient = self.options.lenient_dates;
        let amount = signed_amount(ntry, "Amt", "CdtDbtInd")?;
        let mut base = Entry::new(amount, ntry.line);
        base.reversal = ntry
            .text_at("RvslInd")
            .is_some_and(|v| v == "true" || v == "1");
        base.status = ntry
            .text_any(&["Sts/Cd", "Sts/Prtry", "Sts"])
            .map(str::to_owned);
        if let Some(d) = ntry.text_any(&["BookgDt/Dt", "BookgDt/DtTm"]) {
            base.booking_date =
                iso_date(d, || pos(ntry, "Ntry/BookgDt"), lenient, &mut base.warnings)?;
        }
        if let Some(d) = ntry.text_any(&["ValDt/Dt", "ValDt/DtTm"]) {
            base.value_date = iso_date(d, || pos(ntry, "Ntry/ValDt"), lenient, &mut base.warnings)?;
        }
        base.bank_reference = ntry.text_at("AcctSvcrRef").map(str::to_owned);
        apply_bank_code(&mut base, ntry);
        base.posting_text = ntry.text_at("AddtlNtryInf").map(str::to_owned);
        let details: Vec<&Node> = ntry.all("NtryDtls/TxDtls");
        let btch = ntry.get("NtryDtls/Btch");
        let declared = btch
            .and_then(|b| b.text_at("NbOfTxs"))
            .and_then(|n| n.parse::<u32>().ok());
        let detail_count = u32::try_from(details.len()).unwrap_or(u32::MAX);
        let batch = |index: Option<u32>, split: bool| BatchInfo {
            entry_amount: amount,
            declared_count: declared,
            detail_count,
            index,
            payment_information_id: btch
                .and_then(|b| b.text_at("PmtInfId"))
                .or_else(|| details.first().and_then(|d| d.text_at("Refs/PmtInfId")))
                .map(str::to_owned),
            split,
        };
        if details.len() <= 1 {
            let mut e = base;
            if let Some(d) = details.first() {
                apply_details(&mut e, d, amount.minor < 0)?;
            }
            if declared.is_some_and(|n| n > 1) || btch.is_some() {
                e.batch = Some(batch(None, false));
            }
            return Ok(vec![e]);
        }
        // Several details: split when their amounts add up to the entry.
        let mut amounts = Vec::with_capacity(details.len());
        for d in &details {
            let Some(amt_path) = ["Amt", "AmtDtls/TxAmt/Amt"]
                .into_iter()
                .find(|p| d.get(p).is_some())
            else {
                break;
            };
            let a = unsigned_amount(d, amt_path)?;
            if a.currency != amount.currency {
                break;
            }
            let negative = match d.text_at("CdtDbtInd") {
                Some(ind) => ind == "DBIT",
                None => amount.minor < 0,
            };
            amounts.push(if negative { -a.minor } else { a.minor });
        }
        let splittable = amounts.len() == details.len()
            && amounts.iter().try_fold(0i64, |s, a| s.checked_add(*a)) == Some(amount.minor);
        if !splittable {
            let mut e = base;
            for d in &details {
                apply_structured(&mut e, d);
            }
            let texts: Vec<String> = details.iter().filter_map(|d| unstructured(d)).collect();
            if !texts.is_empty() {
                e.remittance = Some(texts.join(" / "));
            }
            e.batch = Some(batch(None, false));
            return Ok(vec![e]);
        }
        let mut out = Vec::with_capacity(details.len());
        for (i, (d, a)) in details.iter().zip(amounts).enumerate() {
            let mut e = base.clone();
            e.amount = Money::new(a, amount.currency);
            e.line = d.line;
            apply_details(&mut e, d, a < 0)?;
            e.batch = Some(batch(u32::try_from(i).ok(), true));
            out.push(e);
        }
        Ok(out)
    }
}

impl<R: Read> Iterator for CamtReader<R> {
    type Item = Result<StatementItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.step() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

fn pos(node: &Node, element: &str) -> Position {
    Position::at(node.line, element)
}

fn currency(code: &str, at: impl Fn() -> Position) -> Result<Currency> {
    code.trim()
        .parse::<Currency>()
        .map_err(|e| Error::syntax(at(), e.reason))
}

fn unsigned_amount(node: &Node, path: &str) -> Result<Money> {
    let amt = node
        .get(path)
        .ok_or_else(|| Error::syntax(pos(node, &node.name), format!("missing <{path}>")))?;
    let at = || Position::at(amt.line, path);
    let ccy = amt
        .attr("Ccy")
        .ok_or_else(|| Error::syntax(at(), "amount without Ccy attribute"))?;
    let ccy = currency(ccy, at)?;
    let text = amt.text.trim();
    if text.starts_with('-') {
        return Err(Error::syntax(
            at(),
            format!("negative amount {text:?}; the sign belongs in CdtDbtInd"),
        ));
    }
    iso_amount(text, ccy).map_err(|e| Error::syntax(at(), e))
}

/// An ISO 20022 amount: up to five fraction digits are allowed by the schema
/// (`ActiveOrHistoricCurrencyAndAmount`), so digits beyond the currency's minor units are accepted
/// when they are zeros (`12.34000`) and an error otherwise (`12.345` EUR is not representable).
fn iso_amount(text: &str, ccy: Currency) -> std::result::Result<Money, String> {
    let scale = usize::from(ccy.minor_digits());
    let trimmed = match text.split_once('.') {
        Some((int, frac)) if frac.len() > scale && frac.len() <= 5 => {
            let (keep, extra) = frac.split_at(scale);
            if !extra.bytes().all(|b| b == b'0') {
                return Err(format!(
                    "amount {text:?} is not representable in {ccy} ({scale} fraction digits)"
                ));
            }
            if keep.is_empty() {
                int.to_owned()
            } else {
                format!("{int}.{keep}")
            }
        }
        _ => text.to_owned(),
    };
    Money::parse_decimal(&trimmed, ccy, false).map_err(|e| e.to_string())
}

fn signed_amount(node: &Node, amt: &str, ind: &str) -> Result<Money> {
    let a = unsigned_amount(node, amt)?;
    match node.text_at(ind) {
        Some("CRDT") => Ok(a),
        Some("DBIT") => Ok(Money::new(-a.minor, a.currency)),
        other => Err(Error::syntax(
            pos(node, &format!("{}/{ind}", node.name)),
            format!("credit/debit indicator must be CRDT or DBIT, got {other:?}"),
        )),
    }
}

fn apply_bank_code(e: &mut Entry, n: &Node) {
    if let Some(domain) = n.text_at("BkTxCd/Domn/Cd") {
        let fam = n.text_at("BkTxCd/Domn/Fmly/Cd").unwrap_or_default();
        let sub = n.text_at("BkTxCd/Domn/Fmly/SubFmlyCd").unwrap_or_default();
        e.bank_transaction_code = Some(format!("{domain}/{fam}/{sub}"));
    }
    if let Some(p) = n.text_at("BkTxCd/Prtry/Cd") {
        e.proprietary_code = Some(p.to_owned());
        // DK convention: `NTRF+168+00931` = SWIFT code + GVC + text key extension.
        let mut parts = p.split('+');
        if let (Some(_), Some(gvc)) = (parts.next(), parts.next())
            && gvc.len() == 3
            && gvc.bytes().all(|b| b.is_ascii_digit())
        {
            e.gvc = Some(gvc.to_owned());
        }
    }
}

/// Join `Ustrd` lines as the bank meant them (see module docs).
pub(crate) fn join_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut out = String::new();
    let mut prev_len = 0usize;
    for raw in lines {
        if raw.is_empty() {
            continue;
        }
        if !out.is_empty() {
            let cut = matches!(prev_len, 27 | 35 | 70 | 140);
            if !(cut || out.ends_with(' ') || raw.starts_with(' ')) {
                out.push(' ');
            }
        }
        prev_len = raw.chars().count();
        out.push_str(raw);
    }
    let t = out.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn unstructured(d: &Node) -> Option<String> {
    join_lines(d.all("RmtInf/Ustrd").into_iter().map(|n| n.text.as_str()))
}

fn apply_structured(e: &mut Entry, d: &Node) {
    for r in d.all("RmtInf/Strd/CdtrRefInf/Ref") {
        let r = r.text.trim();
        if !r.is_empty() {
            e.structured_references.push(r.to_owned());
        }
    }
    if e.creditor_reference.is_none() {
        e.creditor_reference = e.structured_references.first().cloned();
    }
}

fn party<'a>(d: &'a Node, who: &str) -> Option<&'a Node> {
    d.get(&format!("RltdPties/{who}"))
}

fn apply_details(e: &mut Entry, d: &Node, debit: bool) -> Result<()> {
    let some = |s: Option<&str>| s.map(str::to_owned);
    e.end_to_end_id = some(d.text_at("Refs/EndToEndId").filter(|v| *v != "NOTPROVIDED"));
    e.mandate_id = some(d.text_at("Refs/MndtId"));
    if e.bank_reference.is_none() {
        e.bank_reference = some(d.text_at("Refs/AcctSvcrRef"));
    }
    e.creditor_id = some(d.text_any(&[
        "RltdPties/Cdtr/Id/PrvtId/Othr/Id",
        "RltdPties/Cdtr/Pty/Id/PrvtId/Othr/Id",
        "RltdPties/Cdtr/Id/OrgId/Othr/Id",
        "RltdPties/Cdtr/Pty/Id/OrgId/Othr/Id",
    ]));
    apply_bank_code(e, d);
    if let Some(r) = d.text_any(&["RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry"]) {
        e.return_reason = Some(r.to_owned());
    }
    // Counterparty: the debtor of a credit, the creditor of a debit; a return or reversal undoes
    // the opposite booking, so its counterparty is that booking's (the debtor of a returned or
    // reversed credit, also without RtrInf; the creditor of a reversed debit).
    let undoes = d.get("RtrInf").is_some() || e.reversal;
    let (first, second) = if debit != undoes {
        ("Cdtr", "Dbtr")
    } else {
        ("Dbtr", "Cdtr")
    };
    let chosen = if party(d, first).is_some() || d.get(&format!("RltdPties/{first}Acct")).is_some()
    {
        first
    } else {
        second
    };
    let agent = if chosen == "Dbtr" {
        "DbtrAgt"
    } else {
        "CdtrAgt"
    };
    e.counterparty = Counterparty {
        name: some(d.text_any(&[
            &format!("RltdPties/{chosen}/Nm"),
            &format!("RltdPties/{chosen}/Pty/Nm"),
        ])),
        iban: some(d.text_at(&format!("RltdPties/{chosen}Acct/Id/IBAN"))),
        account: some(d.text_at(&format!("RltdPties/{chosen}Acct/Id/Othr/Id"))),
        bic: some(d.text_any(&[
            &format!("RltdAgts/{agent}/FinInstnId/BICFI"),
            &format!("RltdAgts/{agent}/FinInstnId/BIC"),
        ])),
    };
    if let Some(t) = unstructured(d) {
        e.remittance = Some(t);
    }
    apply_structured(e, d);
    if let Some(info) = d.text_at("AddtlTxInf")
        && e.posting_text.is_none()
    {
        e.posting_text = Some(info.to_owned());
    }
    if d.get("AmtDtls/InstdAmt/Amt").is_some() {
        e.original_amount = Some(unsigned_amount(d, "AmtDtls/InstdAmt/Amt")?);
    }
    let mut charges: Option<Money> = None;
    for c in d
        .all("Chrgs/Amt")
        .into_iter()
        .chain(d.all("Chrgs/Rcrd/Amt"))
    {
        let Some(ccy) = c.attr("Ccy") else { continue };
        let ccy = currency(ccy, || Position::at(c.line, "Chrgs/Amt"))?;
        let m = iso_amount(c.text.trim(), ccy)
            .map_err(|err| Error::syntax(Position::at(c.line, "Chrgs/Amt"), err))?;
        charges = Some(match charges {
            None => m,
            Some(prev) => prev
                .checked_add(m)
                .map_err(|err| Error::syntax(Position::at(c.line, "Chrgs/Amt"), err.to_string()))?,
        });
    }
    e.charges = charges.filter(|c| !c.is_zero());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{BalanceCheck, collect_statements};

    fn doc(entries: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId></GrpHdr>
<Stmt><Id>S1</Id><ElctrncSeqNb>7</ElctrncSeqNb>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-02</Dt></Dt></Bal>
{entries}
</Stmt></BkToCstmrStmt></Document>"#
        )
    }

    const BATCH: &str = r#"<Ntry><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2026-01-02</Dt></BookgDt><ValDt><Dt>2026-01-02</Dt></ValDt>
<NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>
<TxDtls><Amt Ccy="EUR">3.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RmtInf><Ustrd>Rechnung 1 Teil</Ustrd><Ustrd>2</Ustrd></RmtInf></TxDtls>
<TxDtls><Amt Ccy="EUR">2.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RmtInf><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf></TxDtls>
</NtryDtls></Ntry>"#;

    fn parse(xml: &str, options: ParseOptions) -> Result<Vec<crate::statement::Statement>> {
        collect_statements(CamtReader::new(xml.as_bytes(), options)?)
    }

    #[test]
    fn the_counterparty_of_a_reversal_without_rtrinf_is_the_original_payer() {
        let entry = r#"<Ntry><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-01-02</Dt></BookgDt>
<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>Payer GmbH</Nm></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct><Cdtr><Nm>Us AG</Nm></Cdtr><CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct></RltdPties></TxDtls></NtryDtls></Ntry>"#;
        let st = parse(&doc(entry), ParseOptions::default()).unwrap();
        let e = &st[0].entries[0];
        assert!(e.reversal);
        assert_eq!(e.counterparty.name.as_deref(), Some("Payer GmbH"));
        assert_eq!(
            e.counterparty.iban.as_deref(),
            Some("DE02120300000000202051")
        );
    }

    #[test]
    fn amounts_with_up_to_five_fraction_digits_are_read_when_representable() {
        let entry = |amt: &str| {
            format!(
                r#"<Ntry><Amt Ccy="EUR">{amt}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-01-02</Dt></BookgDt></Ntry>"#
            )
        };
        let st = parse(&doc(&entry("5.00000")), ParseOptions::default()).unwrap();
        assert_eq!(st[0].entries[0].amount, Money::eur(-500));
        assert_eq!(st[0].end.balance_check, BalanceCheck::Balanced);
        let err = parse(&doc(&entry("5.00001")), ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Amt") && err.contains("not representable in EUR"),
            "{err}"
        );
        assert!(parse(&doc(&entry("5.000000")), ParseOptions::default()).is_err());
    }

    #[test]
    fn batch_is_split_into_its_details_and_balances() {
        let s = parse(&doc(BATCH), ParseOptions::default()).unwrap();
        assert_eq!(s.len(), 1);
        let st = &s[0];
        assert_eq!(st.header.statement_id.as_deref(), Some("S1"));
        assert_eq!(st.header.message_id.as_deref(), Some("M1"));
        assert_eq!(st.header.version, "camt.053.001.08");
        let amounts: Vec<i64> = st.entries.iter().map(|e| e.amount.minor).collect();
        assert_eq!(amounts, [-300, -200]);
        assert_eq!(
            st.entries[0].remittance.as_deref(),
            Some("Rechnung 1 Teil 2")
        );
        assert_eq!(
            st.entries[1].creditor_reference.as_deref(),
            Some("RF18539007547034")
        );
        assert_eq!(st.entries[1].batch.as_ref().and_then(|b| b.index), Some(1));
        assert_eq!(st.end.balance_check, BalanceCheck::Balanced);
        assert_eq!(st.end.debits_total, -500);
    }

    #[test]
    fn batch_whose_details_do_not_add_up_stays_whole() {
        let xml = doc(&BATCH.replace(">2.00<", ">1.00<"));
        let s = parse(&xml, ParseOptions::default()).unwrap();
        assert_eq!(s[0].entries.len(), 1);
        assert_eq!(s[0].entries[0].amount.minor, -500);
        assert!(!s[0].entries[0].batch.as_ref().unwrap().split);
    }

    #[test]
    fn impossible_value_date_names_line_and_element() {
        let xml = doc(&BATCH.replace("<ValDt><Dt>2026-01-02", "<ValDt><Dt>2026-02-30"));
        let err = parse(&xml, ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "line 8, Ntry/ValDt: impossible date \"2026-02-30\"");
        let s = parse(
            &xml,
            ParseOptions {
                lenient_dates: true,
            },
        )
        .unwrap();
        assert_eq!(s[0].entries[0].value_date, None);
        assert_eq!(s[0].entries[0].warnings.len(), 1);
    }

    #[test]
    fn bad_amounts_and_indicators_are_errors_with_position() {
        let err = parse(
            &doc(&BATCH.replace(">5.00</Amt><CdtDbtInd>DBIT", ">5,00</Amt><CdtDbtInd>DBIT")),
            ParseOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("line 8, Amt:"), "{err}");
        let err = parse(
            &doc(&BATCH.replace(
                "<CdtDbtInd>DBIT</CdtDbtInd><Sts>",
                "<CdtDbtInd>X</CdtDbtInd><Sts>",
            )),
            ParseOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CRDT or DBIT"), "{err}");
        let err = parse("<Invoice/>", ParseOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }

    #[test]
    fn ustrd_joining() {
        assert_eq!(join_lines(["a", "b"]).as_deref(), Some("a b"));
        assert_eq!(
            join_lines(["CRED: ", "DE00"]).as_deref(),
            Some("CRED: DE00")
        );
        let cut = "x".repeat(35);
        assert_eq!(join_lines([cut.as_str(), "yz"]), Some(format!("{cut}yz")));
        assert_eq!(join_lines(["", " "]), None);
    }
}
