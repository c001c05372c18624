//! A seeded portfolio: 10,000 invoices and 10,000 bank transactions with realistic noise (typos,
//! truncated texts, grouped RF references, combined and partial payments, foreign transfers,
//! returns, umlaut spellings), matched by the engine directly and through `mahnwerk match` over
//! a generated camt.053. No payment may ever be applied to a wrong invoice; the share applied
//! automatically is printed.

use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Money};
use mahnwerk_formats::rf::RfReference;
use mahnwerk_matching::cli::{MatchArgs, run as run_match};
use mahnwerk_matching::engine::{BankEntry, OpenItem, OpenItems, Settings, decide, entry_keys};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// Portfolio size: 10,000 invoices and as many transactions; `MATCHING_PORTFOLIO=100000` runs the
/// issue's full size (minutes in a debug build).
fn size() -> usize {
    std::env::var("MATCHING_PORTFOLIO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

const FIRST: &[&str] = &[
    "Jürgen",
    "Björn",
    "Günther",
    "Sören",
    "Jörg",
    "Käthe",
    "Hans",
    "Erika",
    "Anna",
    "Lena",
    "Max",
    "Paul",
    "Sophie",
    "Marie",
    "Lukas",
    "Felix",
    "Jonas",
    "Leonie",
    "Mia",
    "Emma",
    "Ben",
    "Elias",
    "Noah",
    "Özlem",
    "Ümit",
    "Thomas",
    "Andreas",
    "Stefan",
    "Michael",
    "Sabine",
    "Petra",
    "Monika",
    "Ursula",
    "Renate",
    "Helga",
    "Dörte",
    "Bärbel",
    "Jürgen-Peter",
];
const LAST: &[&str] = &[
    "Müller",
    "Schäfer",
    "Weiß",
    "Köhler",
    "Schröder",
    "Krüger",
    "Böhm",
    "Groß",
    "Jäger",
    "Hoffmann",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Schulze",
    "Maier",
    "Köster",
    "Günther",
    "Öztürk",
    "Peters",
    "Möller",
    "Vogt",
    "Jung",
    "Hahn",
    "Keller",
    "Fuchs",
    "Roth",
    "Frank",
    "Berger",
    "Stein",
    "Sommer",
    "Graf",
    "Lorenz",
    "Kühn",
    "Pohl",
    "Brandt",
    "Haas",
    "Dietrich",
    "Engel",
    "Ludwig",
    "Größmann",
    "Weißenfels",
    "Straßburger",
];
const TRADES: &[&str] = &[
    "Bäckerei",
    "Metallbau",
    "Autohaus",
    "Elektro",
    "Gärtnerei",
    "Malerbetrieb",
    "Dachdeckerei",
    "Café",
    "Kfz-Werkstatt",
];
const FORMS: &[&str] = &[
    "GmbH",
    "KG",
    "GmbH & Co. KG",
    "AG",
    "e.K.",
    "UG (haftungsbeschränkt)",
];
const COMMON_AMOUNTS: &[i64] = &[4900, 9900, 11900, 2990, 5950, 23800, 50000];

struct Debtor {
    name: String,
    person: Option<(String, String)>,
    iban: String,
    iban_known: bool,
}

struct Inv {
    case_id: String,
    number: String,
    debtor: usize,
    open: i64,
    rf: Option<String>,
    due: NaiveDate,
    closed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Should be applied to (a subset of) the truth cases; automatic when all of them.
    Apply,
    /// Must not be applied to anything.
    Never,
}

#[derive(Clone)]
struct Tx {
    bank_ref: String,
    amount: Money,
    name: String,
    iban: String,
    text: String,
    strd: Option<String>,
    return_reason: Option<String>,
    truth: Vec<String>,
    expect: Expect,
    kind: &'static str,
}

fn iban(rng: &mut StdRng, country: &str) -> String {
    let bban: String = (0..18)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    let digits: String = format!("{bban}{country}00")
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                c.to_string()
            } else {
                (u32::from(c) - u32::from('A') + 10).to_string()
            }
        })
        .collect();
    let rem = digits
        .bytes()
        .fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
    format!("{country}{:02}{bban}", 98 - rem)
}

fn fold_umlauts(s: &str, plain: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match (c, plain) {
            ('ä', false) => out.push_str("ae"),
            ('ö', false) => out.push_str("oe"),
            ('ü', false) => out.push_str("ue"),
            ('Ä', false) => out.push_str("Ae"),
            ('Ö', false) => out.push_str("Oe"),
            ('Ü', false) => out.push_str("Ue"),
            ('ä', true) => out.push('a'),
            ('ö', true) => out.push('o'),
            ('ü', true) => out.push('u'),
            ('Ä', true) => out.push('A'),
            ('Ö', true) => out.push('O'),
            ('Ü', true) => out.push('U'),
            ('ß', _) => out.push_str("ss"),
            _ => out.push(c),
        }
    }
    out
}

/// The debtor's name as a bank might carry it.
fn spelled(rng: &mut StdRng, d: &Debtor) -> String {
    let roll = rng.random_range(0..100);
    match roll {
        0..40 => d.name.clone(),
        40..55 => fold_umlauts(&d.name, false),
        55..65 => fold_umlauts(&d.name, true),
        65..75 => fold_umlauts(&d.name, false).to_uppercase(),
        75..85 => match &d.person {
            Some((f, l)) => format!("{l}, {f}"),
            None => d.name.replace("GmbH & Co. KG", "GmbH u. Co KG"),
        },
        85..92 => {
            // One letter wrong in the longest word.
            let words: Vec<&str> = d.name.split(' ').collect();
            let (wi, w) = words
                .iter()
                .enumerate()
                .max_by_key(|(_, w)| w.chars().count())
                .map(|(i, w)| (i, *w))
                .unwrap_or((0, ""));
            let mut chars: Vec<char> = w.chars().collect();
            if chars.len() >= 5 {
                let p = rng.random_range(1..chars.len());
                chars[p] = if chars[p] == 'x' { 'y' } else { 'x' };
            }
            let mut words: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
            words[wi] = chars.into_iter().collect();
            words.join(" ")
        }
        92..96 => match &d.person {
            Some((f, l)) => format!("{} {f} {l}", ["Herr", "Frau"].choose(rng).unwrap()),
            None => d.name.clone(),
        },
        _ => match &d.person {
            Some((f, l)) => format!("{}. {l}", f.chars().next().unwrap()),
            None => d.name.clone(),
        },
    }
}

/// An invoice number written the way payers write it.
fn written(rng: &mut StdRng, number: &str) -> String {
    if let Some(rest) = number.strip_prefix("RE-") {
        let (year, seq) = rest.split_once('-').unwrap();
        let v = [
            format!("Rechnung {number}"),
            format!("RE {year} {seq}"),
            format!("Rg.-Nr. {year}-{seq}"),
            format!("Rechnungsnr. {year}{seq}"),
            format!("Invoice RE{year}-{seq} thank you"),
            format!("RE-{year}-\n{seq}"),
            format!("Inv. {year}/{seq}"),
            format!(
                "Kd-Nr. {} Rechnung {number} vom 03.11.2026",
                rng.random_range(100..999)
            ),
            format!("{number} Betrag 119,00 EUR"),
        ];
        v.choose(rng).unwrap().clone()
    } else {
        let short = number.trim_start_matches('0');
        let v = [
            format!("Rechnung {short}"),
            format!("Rechnung {number}"),
            format!("Rg. {number}"),
            format!("Nr. {short} vom 28.10.2026"),
            format!("RE {number}"),
            format!("Invoice {short}"),
            format!("Rechnungsnummer {}\n{}", &short[..2], &short[2..]),
        ];
        v.choose(rng).unwrap().clone()
    }
}

fn typo(rng: &mut StdRng, number: &str) -> String {
    let mut chars: Vec<char> = number.chars().collect();
    let digits: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_digit())
        .collect();
    let &p = digits.last().unwrap();
    let p = if rng.random_bool(0.5) {
        p
    } else {
        digits[digits.len() - 2]
    };
    let d = chars[p].to_digit(10).unwrap();
    chars[p] = char::from_digit((d + 1 + rng.random_range(0..8)) % 10, 10).unwrap();
    chars.into_iter().collect()
}

struct Portfolio {
    debtors: Vec<Debtor>,
    invoices: Vec<Inv>,
    txs: Vec<Tx>,
}

fn generate(seed: u64) -> Portfolio {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut debtors = Vec::new();
    for _ in 0..size() * 35 / 100 {
        let (name, person) = if rng.random_bool(0.75) {
            let f = (*FIRST.choose(&mut rng).unwrap()).to_owned();
            let l = (*LAST.choose(&mut rng).unwrap()).to_owned();
            (format!("{f} {l}"), Some((f, l)))
        } else {
            let t = TRADES.choose(&mut rng).unwrap();
            let l = LAST.choose(&mut rng).unwrap();
            let f = FORMS.choose(&mut rng).unwrap();
            (format!("{t} {l} {f}"), None)
        };
        debtors.push(Debtor {
            name,
            person,
            iban: iban(&mut rng, "DE"),
            iban_known: rng.random_bool(0.6),
        });
    }
    let base = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let mut invoices = Vec::new();
    for i in 0..size() {
        let number = if rng.random_bool(0.7) {
            format!("RE-2026-{:05}", 100 + i)
        } else {
            format!("{:07}", 20_000 + i)
        };
        let rf = rng.random_bool(0.7).then(|| {
            RfReference::create(&number.replace('-', ""))
                .unwrap()
                .as_str()
                .to_owned()
        });
        let open = if rng.random_bool(0.3) {
            *COMMON_AMOUNTS.choose(&mut rng).unwrap()
        } else {
            rng.random_range(1_000..300_000)
        };
        invoices.push(Inv {
            case_id: format!("case-{i:05}"),
            number,
            debtor: rng.random_range(0..debtors.len()),
            open,
            rf,
            due: base + chrono::Duration::days(rng.random_range(0..60)),
            closed: false,
        });
    }
    let mut pool: Vec<usize> = (0..size()).collect();
    pool.shuffle(&mut rng);
    let mut by_debtor: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &pool {
        by_debtor.entry(invoices[i].debtor).or_default().push(i);
    }
    let mut used = vec![false; size()];
    let mut txs: Vec<Tx> = Vec::new();
    let mut followups: Vec<(usize, Tx)> = Vec::new();
    let mut next_ref = 0u32;
    let mut bank_ref = || {
        next_ref += 1;
        format!("TX{next_ref:07}")
    };
    let mut cursor = 0usize;
    while txs.len() + followups.len() < size() {
        while cursor < pool.len() && used[pool[cursor]] {
            cursor += 1;
        }
        if cursor >= pool.len() {
            break;
        }
        let i = pool[cursor];
        used[i] = true;
        let inv = &invoices[i];
        let d = &debtors[inv.debtor];
        let eur = |m: i64| Money::eur(m);
        let mut tx = Tx {
            bank_ref: bank_ref(),
            amount: eur(inv.open),
            name: spelled(&mut rng, d),
            iban: d.iban.clone(),
            text: String::new(),
            strd: None,
            return_reason: None,
            truth: vec![inv.case_id.clone()],
            expect: Expect::Apply,
            kind: "",
        };
        let roll = rng.random_range(0..1000);
        let mut close = false;
        let reference = |rng: &mut StdRng, tx: &mut Tx| {
            if let Some(rf) = &inv.rf
                && rng.random_bool(0.5)
            {
                tx.strd = Some(rf.clone());
            } else {
                tx.text = written(rng, &inv.number);
            }
        };
        match roll {
            0..330 if inv.rf.is_some() => {
                tx.kind = "rf_structured";
                tx.strd = inv.rf.clone();
                if rng.random_bool(0.3) {
                    tx.text = format!("Rechnung vom {}", inv.due.format("%d.%m.%Y"));
                }
            }
            0..430 if inv.rf.is_some() => {
                tx.kind = "rf_in_text";
                let printed = RfReference::parse(inv.rf.as_ref().unwrap())
                    .unwrap()
                    .to_print_format();
                tx.text = [
                    format!("Zahlung {printed} Danke"),
                    format!("Ref {printed}"),
                    printed.to_lowercase(),
                    format!("SVWZ+{printed} EREF+NOTPROVIDED"),
                ]
                .choose(&mut rng)
                .unwrap()
                .clone();
            }
            0..760 => {
                tx.kind = "invoice_number";
                tx.text = written(&mut rng, &inv.number);
            }
            760..770 => {
                tx.kind = "number_typo";
                tx.text = format!("Rechnung {}", typo(&mut rng, &inv.number));
            }
            770..790 => {
                // Combined payment for 2-4 invoices of the same debtor.
                let others: Vec<usize> = by_debtor[&inv.debtor]
                    .iter()
                    .copied()
                    .filter(|&j| !used[j] && j != i)
                    .take(rng.random_range(1..4))
                    .collect();
                if others.is_empty() {
                    tx.kind = "invoice_number";
                    tx.text = written(&mut rng, &inv.number);
                } else {
                    tx.kind = "combined";
                    let mut all = vec![i];
                    all.extend(&others);
                    for &j in &others {
                        used[j] = true;
                    }
                    let total: i64 = all.iter().map(|&j| invoices[j].open).sum();
                    let numbers: Vec<&str> =
                        all.iter().map(|&j| invoices[j].number.as_str()).collect();
                    let mut text = if rng.random_bool(0.3) {
                        format!(
                            "Sammelueberweisung fuer die folgenden Rechnungen aus Oktober 2026 gemaess Ihrer Aufstellung vom 28.10.: {}",
                            numbers.join(", ")
                        )
                    } else {
                        format!("Rechnungen {}", numbers.join(", "))
                    };
                    if text.chars().count() > 140 {
                        text = text.chars().take(140).collect();
                        tx.kind = "combined_truncated";
                    }
                    tx.text = text;
                    tx.amount = eur(if rng.random_bool(0.8) {
                        total
                    } else {
                        total - rng.random_range(1..total / 2)
                    });
                    tx.truth = all.iter().map(|&j| invoices[j].case_id.clone()).collect();
                }
            }
            790..820 => {
                tx.kind = "partial";
                let part = inv.open * rng.random_range(20..80) / 100;
                tx.amount = eur(part.max(1));
                reference(&mut rng, &mut tx);
                if rng.random_bool(0.66) {
                    let mut rest = tx.clone();
                    rest.bank_ref = bank_ref();
                    rest.amount = eur(inv.open - part.max(1));
                    rest.kind = "rest_of_partial";
                    followups.push((txs.len(), rest));
                }
            }
            820..825 => {
                tx.kind = "overpaid";
                tx.amount = eur(inv.open + rng.random_range(1..2_000));
                reference(&mut rng, &mut tx);
            }
            825..960 => {
                tx.kind = "name_and_amount";
                tx.text = [
                    "",
                    "Danke",
                    "Zahlung",
                    "Oktober",
                    "Vielen Dank fuer die Lieferung",
                ]
                .choose(&mut rng)
                .unwrap()
                .to_string();
            }
            960..980 => {
                tx.kind = "foreign";
                let country = *["AT", "NL", "FR", "CH"].choose(&mut rng).unwrap();
                tx.iban = iban(&mut rng, country);
                tx.text = format!("Payment invoice {}", inv.number);
                if rng.random_bool(0.25) {
                    tx.kind = "foreign_currency";
                    let c: Currency = ["USD", "CHF"].choose(&mut rng).unwrap().parse().unwrap();
                    tx.amount = Money::new(inv.open, c);
                    tx.expect = Expect::Never;
                }
            }
            980..990 => {
                // Not ours: an unknown payer, an amount no invoice has, or an invoice number
                // the tenant never issued.
                used[i] = false;
                tx.kind = "not_ours";
                tx.name = "Unbekannter Verein e.V.".into();
                tx.iban = iban(&mut rng, "DE");
                tx.amount = eur(rng.random_range(1..1_000_000) * 10 + 7);
                tx.text = ["Spende", "Mitgliedsbeitrag 2026", "Rechnung 9912345"]
                    .choose(&mut rng)
                    .unwrap()
                    .to_string();
                tx.truth = Vec::new();
                tx.expect = Expect::Never;
            }
            990..995 => {
                tx.kind = "cancelled_case";
                close = true;
                reference(&mut rng, &mut tx);
                tx.expect = Expect::Never;
            }
            _ => {
                // A direct debit returned: the original payment, then the return.
                tx.kind = "invoice_number";
                tx.text = written(&mut rng, &inv.number);
                let mut ret = tx.clone();
                ret.bank_ref = bank_ref();
                ret.amount = eur(-tx.amount.minor);
                ret.return_reason = Some(
                    ["MD06", "AC04", "MS03"]
                        .choose(&mut rng)
                        .unwrap()
                        .to_string(),
                );
                ret.text = format!("RUECKLASTSCHRIFT {}", ret.text);
                ret.kind = "return";
                ret.truth = Vec::new();
                ret.expect = Expect::Never;
                followups.push((txs.len(), ret));
            }
        }
        if tx.kind.is_empty() {
            tx.kind = "invoice_number";
            tx.text = written(&mut rng, &inv.number);
        }
        txs.push(tx);
        if close {
            invoices[i].closed = true;
        }
    }
    // Follow-ups land at a random later position.
    followups.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (after, tx) in followups {
        let at = rng.random_range(after + 1..=txs.len());
        txs.insert(at, tx);
    }
    Portfolio {
        debtors,
        invoices,
        txs,
    }
}

fn open_items(p: &Portfolio) -> Vec<OpenItem> {
    p.invoices
        .iter()
        .map(|inv| {
            let d = &p.debtors[inv.debtor];
            OpenItem {
                customer_number: None,
                case_id: inv.case_id.clone(),
                invoice_number: inv.number.clone(),
                debtor_name: d.name.clone(),
                debtor_ibans: if d.iban_known {
                    vec![d.iban.clone()]
                } else {
                    Vec::new()
                },
                open: Money::eur(inv.open),
                payment_reference: inv.rf.clone(),
                letter_references: Vec::new(),
                due_date: inv.due,
                cash_discount: None,
                closed: inv.closed.then(|| "cancelled".to_owned()),
            }
        })
        .collect()
}

fn booked_on() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 10).unwrap()
}

fn bank_entry(tx: &Tx) -> BankEntry {
    BankEntry {
        entry_ref: tx.bank_ref.clone(),
        amount: Some(tx.amount),
        booked_on: Some(booked_on()),
        booked: true,
        counterparty_name: Some(tx.name.clone()),
        counterparty_iban: Some(tx.iban.clone()),
        ultimate_debtor: None,
        remittance: (!tx.text.is_empty()).then(|| tx.text.clone()),
        references: tx.strd.iter().cloned().collect(),
        reversal: false,
        return_reason: tx.return_reason.clone(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn camt053(p: &Portfolio) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>GEN-1</MsgId><CreDtTm>2026-11-10T18:00:00</CreDtTm></GrpHdr><Stmt><Id>GEN-1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>\n",
    );
    for tx in &p.txs {
        let m = tx.amount;
        let (ind, party, acct) = if m.minor < 0 {
            ("DBIT", "Cdtr", "CdtrAcct")
        } else {
            ("CRDT", "Dbtr", "DbtrAcct")
        };
        let _ = write!(
            x,
            "<Ntry><Amt Ccy=\"{}\">{}</Amt><CdtDbtInd>{ind}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt><AcctSvcrRef>{}</AcctSvcrRef><BkTxCd/><NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><RltdPties><{party}><Pty><Nm>{}</Nm></Pty></{party}><{acct}><Id><IBAN>{}</IBAN></Id></{acct}></RltdPties><RmtInf>",
            m.currency,
            Money::new(m.minor.abs(), m.currency).to_decimal_string(),
            booked_on(),
            booked_on(),
            tx.bank_ref,
            esc(&tx.name),
            tx.iban,
        );
        for line in tx.text.split('\n').filter(|l| !l.is_empty()) {
            let _ = write!(x, "<Ustrd>{}</Ustrd>", esc(line));
        }
        if let Some(r) = &tx.strd {
            let _ = write!(
                x,
                "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{r}</Ref></CdtrRefInf></Strd>"
            );
        }
        x.push_str("</RmtInf>");
        if let Some(r) = &tx.return_reason {
            let _ = write!(x, "<RtrInf><Rsn><Cd>{r}</Cd></Rsn></RtrInf>");
        }
        x.push_str("</TxDtls></NtryDtls></Ntry>\n");
    }
    x.push_str("</Stmt></BkToCstmrStmt></Document>\n");
    x
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Score {
    entries: usize,
    should_apply: usize,
    /// Applied, every allocation to a right invoice.
    automatic: usize,
    /// Of those, every invoice the payment was for got its part.
    complete: usize,
    wrong: Vec<String>,
    by_kind: BTreeMap<&'static str, (usize, usize)>,
}

fn score(txs: &[Tx], decisions: &HashMap<String, Vec<String>>) -> Score {
    let mut s = Score::default();
    for tx in txs {
        s.entries += 1;
        let got = decisions.get(&tx.bank_ref).cloned().unwrap_or_default();
        let truth: HashSet<&String> = tx.truth.iter().collect();
        let wrong = match tx.expect {
            Expect::Never => !got.is_empty(),
            Expect::Apply => got.iter().any(|c| !truth.contains(c)),
        };
        if wrong {
            s.wrong.push(format!(
                "{} ({}): applied to {got:?}, truth {:?}, text {:?}",
                tx.bank_ref, tx.kind, tx.truth, tx.text
            ));
        }
        let k = s.by_kind.entry(tx.kind).or_default();
        k.0 += 1;
        if tx.expect == Expect::Apply {
            s.should_apply += 1;
            if !got.is_empty() && !wrong {
                s.automatic += 1;
                k.1 += 1;
                if got.iter().collect::<HashSet<_>>() == truth {
                    s.complete += 1;
                }
            }
        } else if got.is_empty() {
            k.1 += 1;
        }
    }
    s
}

fn report(label: &str, s: &Score) {
    let pct =
        |a: usize, b: usize| format!("{}.{:02}%", a * 100 / b.max(1), a * 10_000 / b.max(1) % 100);
    println!(
        "{label}: {} entries, {} payments for our invoices, applied automatically {} ({}), to every invoice it was for {} ({}), wrong applications {}",
        s.entries,
        s.should_apply,
        s.automatic,
        pct(s.automatic, s.should_apply),
        s.complete,
        pct(s.complete, s.should_apply),
        s.wrong.len()
    );
    for (k, (n, ok)) in &s.by_kind {
        println!("  {k:<20} {n:>6}  as expected {ok:>6} ({})", pct(*ok, *n));
    }
}

#[test]
fn generated_portfolio_is_matched_without_a_single_wrong_application() {
    let t0 = std::time::Instant::now();
    let p = generate(0x6d61_686e);
    println!("generated in {:?}", t0.elapsed());
    assert_eq!(p.invoices.len(), size());
    assert!(p.txs.len() >= size() * 95 / 100, "{}", p.txs.len());

    // 1. The engine directly.
    let mut items = OpenItems::new();
    for it in open_items(&p) {
        items.upsert(it);
    }
    let settings = Settings::default();
    // On the items an entry's reference and number keys reach, with the amount buckets loaded
    //    only when the engine asks for them (what the service loads per chunk), the engine
    //    decides exactly as on all open items.
    let all = open_items(&p);
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, it) in all.iter().enumerate() {
        for k in OpenItems::item_keys(it) {
            by_key.entry(k).or_default().push(i);
        }
    }
    let reach = |keys: &[String]| -> Vec<OpenItem> {
        let mut found: Vec<usize> = keys
            .iter()
            .flat_map(|k| by_key.get(k).into_iter().flatten().copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().map(|i| all[i].clone()).collect()
    };
    // Every third entry at the default size (the check costs as much as the rest of the test in
    // a debug build), a sample of 3,334 entries at larger sizes.
    let step = 3 * (size() / 10_000).max(1);
    let (mut reached, mut loads) = (0, 0);
    for tx in p.txs.iter().step_by(step) {
        let e = bank_entry(tx);
        let mut sub = OpenItems::partial();
        let keys: Vec<String> = entry_keys(&e)
            .into_iter()
            .filter(|k| !k.starts_with("a:"))
            .collect();
        for it in reach(&keys) {
            sub.upsert(it);
        }
        let d = loop {
            let d = decide(&sub, &e, &settings);
            let missing = sub.take_missing();
            if missing.is_empty() {
                break d;
            }
            loads += 1;
            sub.add_buckets(reach(&missing), &missing);
        };
        assert_eq!(
            d,
            decide(&items, &e, &settings),
            "{}: decided otherwise on the {} items its keys reach",
            tx.bank_ref,
            sub.len()
        );
        reached += sub.len();
    }
    let checked = p.txs.len().div_ceil(step);
    println!(
        "subset decisions checked after {:?}: {:.1} items reached per entry, amount buckets loaded for {:.1}% of the entries",
        t0.elapsed(),
        reached as f64 / checked as f64,
        100.0 * loads as f64 / checked as f64
    );
    let mut direct: HashMap<String, Vec<String>> = HashMap::new();
    let mut reviews: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for tx in &p.txs {
        let e = bank_entry(tx);
        let d = decide(&items, &e, &settings);
        items.apply(&e, &d);
        if tx.expect == Expect::Apply && !d.outcome.applies() {
            let reason: String = d
                .reason()
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect();
            *reviews
                .entry((tx.kind, reason.replace("##", "#").replace("##", "#")))
                .or_default() += 1;
        }
        direct.insert(
            tx.bank_ref.clone(),
            d.allocations.iter().map(|a| a.case_id.clone()).collect(),
        );
    }
    println!("engine run after {:?}", t0.elapsed());
    let s = score(&p.txs, &direct);
    report("engine", &s);
    println!("payments for our invoices left to review, by kind and reason:");
    for ((kind, reason), n) in &reviews {
        println!("  {n:>5}  {kind}: {reason}");
    }
    assert!(
        s.wrong.is_empty(),
        "wrong applications:\n{}",
        s.wrong.join("\n")
    );
    // The aim (97%) is asserted at the default size; at 100,000 the generator's 2,400 distinct
    // person names make ~11 namesakes per name, and name-only payments of common amounts go to
    // review as they should (printed, not asserted).
    if size() == 10_000 {
        assert!(
            s.automatic * 100 >= s.should_apply * 97,
            "automatic share below 97%"
        );
    }

    // 2. The same through `mahnwerk match` over a camt.053 and open items as JSON lines.
    let dir = tempfile::tempdir().unwrap();
    let items_path = dir.path().join("items.jsonl");
    let mut jsonl = String::new();
    for it in open_items(&p) {
        let mut v = serde_json::json!({
            "case_id": it.case_id,
            "invoice_number": it.invoice_number,
            "debtor_name": it.debtor_name,
            "open": {"minor": it.open.minor, "currency": "EUR"},
            "payment_reference": it.payment_reference,
            "due_date": it.due_date,
        });
        if let Some(iban) = it.debtor_ibans.first() {
            v["debtor_iban"] = serde_json::json!(iban);
        }
        if let Some(c) = &it.closed {
            v["closed"] = serde_json::json!(c);
        }
        jsonl.push_str(&v.to_string());
        jsonl.push('\n');
    }
    std::fs::write(&items_path, jsonl).unwrap();
    let stmt_path = dir.path().join("statement.xml");
    std::fs::write(&stmt_path, camt053(&p)).unwrap();
    let args = MatchArgs {
        open_items: items_path,
        statement: stmt_path,
        json: true,
        threshold: 85,
        csv_mapping: None,
    };
    let mut out = Vec::new();
    let summary = run_match(&args, &mut out).unwrap();
    assert_eq!(summary.entries as usize, p.txs.len());
    let mut via_cli: HashMap<String, Vec<String>> = HashMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let cases = v["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["case_id"].as_str().unwrap().to_owned())
            .collect();
        via_cli.insert(v["entry_ref"].as_str().unwrap().to_owned(), cases);
    }
    println!("dry run after {:?}", t0.elapsed());
    let c = score(&p.txs, &via_cli);
    report("mahnwerk match", &c);
    assert!(
        c.wrong.is_empty(),
        "wrong applications:\n{}",
        c.wrong.join("\n")
    );
    assert_eq!(
        (c.automatic, c.complete),
        (s.automatic, s.complete),
        "the dry run decides as the engine does"
    );
}
