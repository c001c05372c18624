//! German and English texts of the console, and how amounts and dates are written in each.

use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    pub fn parse(s: Option<&str>) -> Lang {
        match s {
            Some("en") => Lang::En,
            _ => Lang::De,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// A text in this language.
    pub fn t(self, de: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => en,
        }
    }

    /// `minor` units of `currency` (two decimals), e.g. `1.234,56 EUR` / `EUR 1,234.56`.
    pub fn money(self, minor: i64, currency: &str) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        let (int, frac) = (abs / 100, abs % 100);
        let digits = int.to_string();
        let sep = match self {
            Lang::De => '.',
            Lang::En => ',',
        };
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(sep);
            }
            grouped.push(c);
        }
        match self {
            Lang::De => format!("{sign}{grouped},{frac:02} {currency}"),
            Lang::En => format!("{currency} {sign}{grouped}.{frac:02}"),
        }
    }

    pub fn date(self, d: NaiveDate) -> String {
        match self {
            Lang::De => d.format("%d.%m.%Y").to_string(),
            Lang::En => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// The name of a stage (dunning stages name their step).
    pub fn stage(self, stage: crate::stage::Stage, step: u32, title: &str) -> String {
        use crate::stage::Stage::*;
        match stage {
            Open => self.t("offen", "open").into(),
            Overdue => self.t("überfällig", "overdue").into(),
            Dunning if !title.is_empty() => format!("{} {step}: {title}", self.t("Stufe", "Step")),
            Dunning if step == 0 => self.t("im Mahnverfahren", "in dunning").into(),
            Dunning if step == 1 => self.t("Zahlungserinnerung", "Reminder").into(),
            Dunning => format!("{}. {}", step - 1, self.t("Mahnung", "notice")),
            Escalated => self.t("zur Übergabe", "for hand-over").into(),
            HandedOver => self.t("an Inkasso übergeben", "handed over").into(),
            Settled => self.t("bezahlt", "settled").into(),
            WrittenOff => self.t("ausgebucht", "written off").into(),
            Cancelled => self.t("storniert", "cancelled").into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn money_in_both_languages() {
        assert_eq!(Lang::De.money(123_456, "EUR"), "1.234,56 EUR");
        assert_eq!(Lang::En.money(123_456, "EUR"), "EUR 1,234.56");
        assert_eq!(Lang::De.money(-5, "EUR"), "-0,05 EUR");
        assert_eq!(Lang::En.money(100_000_000, "EUR"), "EUR 1,000,000.00");
        use crate::stage::Stage;
        assert_eq!(Lang::De.stage(Stage::Dunning, 0, ""), "im Mahnverfahren");
        assert_eq!(Lang::De.stage(Stage::Dunning, 1, ""), "Zahlungserinnerung");
        assert_eq!(Lang::En.stage(Stage::Dunning, 3, ""), "2. notice");
    }
}
