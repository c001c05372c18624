//! Letter texts from editable templates (minijinja, Jinja2 syntax), sandboxed: templates see only
//! the [`TemplateContext`] variables, cannot read files or the network, and run on a fuel budget.
//!
//! # Template names
//! - `{kind}.{lang}.j2`, e.g. `first_notice.de.j2`: must define the blocks `title`,
//!   `salutation`, `body` and `closing`. Branch on `tone` (`friendly`, `neutral`, `firm`).
//! - `notices.{lang}.j2`: the standard notices printed after the payment block.
//!
//! Texts are plain text: a blank line separates paragraphs, and the lines of one paragraph are
//! joined with a space, so templates can wrap long sentences.
//!
//! # The save-time check
//! [`check_template`] rejects, naming the line: a syntax error; a variable that is not a
//! [`TemplateContext`] variable (static analysis of the whole template, also branches that the
//! sample does not take); a missing block; and any error when rendering against a complete and a
//! minimal sample letter in strict mode (e.g. an unknown attribute of a loop variable, or an
//! optional part used without `{% if … %}`). A template that passes cannot fail at send time
//! because of its own text.

use crate::error::{Error, Result};
use crate::model::{Language, LetterKind, LetterModel, Tone};
use crate::view::TemplateContext;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The blocks a letter template must define.
pub const LETTER_BLOCKS: [&str; 4] = ["title", "salutation", "body", "closing"];

/// Names minijinja itself provides that a template may use without them being context variables.
const BUILTIN_NAMES: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
];

/// Most instructions one template render may execute (protects against runaway loops).
const FUEL: u64 = 200_000;

/// The default templates, embedded in the crate.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "reminder.de.j2",
        include_str!("../templates/reminder.de.j2"),
    ),
    (
        "reminder.en.j2",
        include_str!("../templates/reminder.en.j2"),
    ),
    (
        "first_notice.de.j2",
        include_str!("../templates/first_notice.de.j2"),
    ),
    (
        "first_notice.en.j2",
        include_str!("../templates/first_notice.en.j2"),
    ),
    (
        "last_notice.de.j2",
        include_str!("../templates/last_notice.de.j2"),
    ),
    (
        "last_notice.en.j2",
        include_str!("../templates/last_notice.en.j2"),
    ),
    (
        "consolidated_notice.de.j2",
        include_str!("../templates/consolidated_notice.de.j2"),
    ),
    (
        "consolidated_notice.en.j2",
        include_str!("../templates/consolidated_notice.en.j2"),
    ),
    (
        "creditor_copy.de.j2",
        include_str!("../templates/creditor_copy.de.j2"),
    ),
    (
        "creditor_copy.en.j2",
        include_str!("../templates/creditor_copy.en.j2"),
    ),
    (
        "payment_plan_confirmation.de.j2",
        include_str!("../templates/payment_plan_confirmation.de.j2"),
    ),
    (
        "payment_plan_confirmation.en.j2",
        include_str!("../templates/payment_plan_confirmation.en.j2"),
    ),
    ("notices.de.j2", include_str!("../templates/notices.de.j2")),
    ("notices.en.j2", include_str!("../templates/notices.en.j2")),
];

/// What a template name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateRole {
    /// A letter template with the four blocks.
    Letter(LetterKind, Language),
    /// The notices of one language.
    Notices(Language),
}

/// Parse a template file name such as `last_notice.en.j2`.
pub fn role_of(name: &str) -> Option<TemplateRole> {
    let stem = name.strip_suffix(".j2")?;
    let (head, lang) = stem.rsplit_once('.')?;
    let lang = Language::parse(lang)?;
    if head == "notices" {
        return Some(TemplateRole::Notices(lang));
    }
    LetterKind::parse(head).map(|k| TemplateRole::Letter(k, lang))
}

/// The file name of the letter template for `kind` in `lang`.
pub fn letter_template_name(kind: LetterKind, lang: Language) -> String {
    format!("{}.{}.j2", kind.as_str(), lang.as_str())
}

/// The file name of the notices template in `lang`.
pub fn notices_template_name(lang: Language) -> String {
    format!("notices.{}.j2", lang.as_str())
}

/// The texts of one letter, rendered from its templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub title: String,
    pub salutation: String,
    /// Paragraphs before the claim table.
    pub body: Vec<String>,
    /// Paragraphs after the payment block.
    pub notices: Vec<String>,
    pub closing: String,
}

/// A checked set of templates: the defaults, with a tenant's overrides on top. Build it once
/// and reuse it for every letter (templates are parsed once).
pub struct TemplateSet {
    env: Environment<'static>,
    overridden: BTreeSet<String>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("overridden", &self.overridden)
            .finish()
    }
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    // Block tags swallow their own line, so templates can be laid out readably.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

impl TemplateSet {
    /// The default templates only.
    pub fn defaults() -> Self {
        // The defaults are checked by the tests; should one still fail to parse, the override
        // path reports it like any tenant template.
        Self::with_overrides(std::iter::empty()).unwrap_or_else(|_| TemplateSet {
            env: new_env(),
            overridden: BTreeSet::new(),
        })
    }

    /// The defaults with `overrides` (file name → source) on top. Every override is checked with
    /// [`check_template`] first; the first failure is returned.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut sources: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect();
        let mut overridden = BTreeSet::new();
        for (name, source) in overrides {
            check_template(&name, &source)?;
            overridden.insert(name.clone());
            sources.insert(name, source);
        }
        let mut env = new_env();
        for (name, source) in sources {
            let n = name.clone();
            env.add_template_owned(name, source)
                .map_err(|e| template_error(&n, &e))?;
        }
        Ok(TemplateSet { env, overridden })
    }

    /// Names of the templates that override a default.
    pub fn overridden(&self) -> impl Iterator<Item = &str> {
        self.overridden.iter().map(String::as_str)
    }

    /// Render the texts of `model` (validated, with its context `ctx`).
    pub fn render(&self, model: &LetterModel, ctx: &TemplateContext) -> Result<Texts> {
        let name = letter_template_name(model.kind, model.language);
        let blocks = render_blocks(&self.env, &name, ctx)?;
        let notices_name = notices_template_name(model.language);
        let notices = self
            .env
            .get_template(&notices_name)
            .and_then(|t| t.render(Value::from(Serde(ctx))))
            .map_err(|e| template_error(&notices_name, &e))?;
        let one_line = |s: &str| paragraphs(s).join(" ");
        Ok(Texts {
            title: model.title.clone().unwrap_or_else(|| one_line(&blocks[0])),
            salutation: model
                .salutation
                .clone()
                .unwrap_or_else(|| one_line(&blocks[1])),
            body: paragraphs(&blocks[2]),
            notices: paragraphs(&notices),
            closing: model
                .closing
                .clone()
                .unwrap_or_else(|| one_line(&blocks[3])),
        })
    }
}

fn render_blocks(env: &Environment<'_>, name: &str, ctx: &TemplateContext) -> Result<Vec<String>> {
    let tmpl = env
        .get_template(name)
        .map_err(|e| template_error(name, &e))?;
    let mut state = tmpl
        .render_captured(Value::from(Serde(ctx)))
        .map_err(|e| template_error(name, &e))?;
    LETTER_BLOCKS
        .iter()
        .map(|block| {
            state
                .with_state_mut(|s| s.render_block(block))
                .map_err(|e| template_error(name, &e))
        })
        .collect()
}

/// Split text into paragraphs at blank lines; join the lines of a paragraph with one space.
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

fn template_error(name: &str, e: &minijinja::Error) -> Error {
    let reason = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    Error::Template {
        name: name.to_owned(),
        line: e.line().unwrap_or(1),
        reason,
    }
}

/// Every variable path a template may use: the keys of a complete [`TemplateContext`], nested
/// with dots (`payment.iban`), without descending into lists (loop variables are declared by the
/// loop).
pub fn known_variables() -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&path, child, out);
                out.insert(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    let full = crate::model::full_sample();
    if let Ok(total) = full.validate() {
        let ctx = TemplateContext::new(&full, total);
        if let Ok(v) = serde_json::to_value(&ctx) {
            walk("", &v, &mut out);
        }
    }
    out
}

/// The 1-based line of the first place `path` (or its first segment) occurs in `source`.
fn line_of(source: &str, path: &str) -> usize {
    let first = path.split('.').next().unwrap_or(path);
    for needle in [path, first] {
        for (i, line) in source.lines().enumerate() {
            let mut rest = line;
            while let Some(pos) = rest.find(needle) {
                let before = rest[..pos].chars().next_back();
                let after = rest[pos + needle.len()..].chars().next();
                let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if !ident(before) && !ident(after) {
                    return i + 1;
                }
                rest = &rest[pos + needle.len()..];
            }
        }
    }
    1
}

/// The save-time check of one template (see the module docs). `name` must be a known template
/// name (`first_notice.de.j2`, `notices.en.j2`).
pub fn check_template(name: &str, source: &str) -> Result<()> {
    let role = role_of(name).ok_or_else(|| Error::Template {
        name: name.to_owned(),
        line: 1,
        reason: format!(
            "unknown template name; expected {{kind}}.{{de|en}}.j2 with kind one of {} or notices.{{de|en}}.j2",
            LetterKind::ALL.map(LetterKind::as_str).join(", ")
        ),
    })?;
    let mut env = new_env();
    env.add_template_owned(name.to_owned(), source.to_owned())
        .map_err(|e| template_error(name, &e))?;
    let tmpl = env
        .get_template(name)
        .map_err(|e| template_error(name, &e))?;

    // Unknown variables, found statically in every branch.
    let known = known_variables();
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(true)
        .into_iter()
        .filter(|v| {
            let first = v.split('.').next().unwrap_or(v);
            !known.contains(v.as_str()) && !BUILTIN_NAMES.contains(&first)
        })
        .collect();
    unknown.sort_by_key(|v| (line_of(source, v), v.clone()));
    if let Some(v) = unknown.first() {
        return Err(Error::Template {
            name: name.to_owned(),
            line: line_of(source, v),
            reason: format!(
                "unknown variable `{v}`; known variables: {}",
                top_level(&known).join(", ")
            ),
        });
    }

    if let TemplateRole::Letter(..) = role
        && let Some(missing) = LETTER_BLOCKS.iter().find(|b| !defines_block(source, b))
    {
        return Err(Error::Template {
            name: name.to_owned(),
            line: 1,
            reason: format!(
                "missing block `{missing}`; a letter template defines {}",
                LETTER_BLOCKS.join(", ")
            ),
        });
    }

    // Render against a complete and a minimal sample letter in every tone, strictly.
    for model in check_models(role) {
        let total = model.validate()?;
        let ctx = TemplateContext::new(&model, total);
        match role {
            TemplateRole::Letter(..) => {
                let blocks = render_blocks(&env, name, &ctx)?;
                if blocks[0].trim().is_empty() {
                    return Err(Error::Template {
                        name: name.to_owned(),
                        line: 1,
                        reason: "the block `title` renders empty".into(),
                    });
                }
            }
            TemplateRole::Notices(_) => {
                tmpl.render(Value::from(Serde(&ctx)))
                    .map_err(|e| template_error(name, &e))?;
            }
        }
    }
    Ok(())
}

/// Whether `source` has a `{% block name %}` tag (whitespace control allowed).
fn defines_block(source: &str, name: &str) -> bool {
    source.match_indices("{%").any(|(i, _)| {
        let rest = source[i + 2..].trim_start_matches(['-', '+']).trim_start();
        rest.strip_prefix("block")
            .filter(|r| r.starts_with(char::is_whitespace))
            .map(str::trim_start)
            .is_some_and(|r| {
                r.strip_prefix(name).is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
    })
}

fn top_level(known: &BTreeSet<String>) -> Vec<&str> {
    known
        .iter()
        .filter(|k| !k.contains('.'))
        .map(String::as_str)
        .collect()
}

/// The sample letters a template is rendered against by the check: complete and minimal, each
/// in every tone, in the template's kind and language.
fn check_models(role: TemplateRole) -> Vec<LetterModel> {
    let (kind, lang) = match role {
        TemplateRole::Letter(k, l) => (k, l),
        TemplateRole::Notices(l) => (LetterKind::FirstNotice, l),
    };
    let mut out = Vec::new();
    for tone in Tone::ALL {
        let mut full = crate::model::full_sample();
        full.kind = kind;
        full.language = lang;
        full.tone = tone;
        let mut minimal = crate::model::sample_for(kind);
        minimal.language = lang;
        minimal.tone = tone;
        minimal.title = None;
        minimal.salutation = None;
        minimal.closing = None;
        minimal.signature = None;
        minimal.deadline = None;
        minimal.payment = None;
        minimal.references = Default::default();
        minimal.notices = Default::default();
        if kind != LetterKind::PaymentPlanConfirmation {
            minimal.payment_plan = None;
        }
        if kind != LetterKind::CreditorCopy {
            minimal.copy_of = None;
        }
        out.push(full);
        out.push(minimal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_passes_the_check() {
        for (name, source) in DEFAULTS {
            check_template(name, source).unwrap_or_else(|e| panic!("{e}"));
        }
        // Every kind and language has its template.
        for kind in LetterKind::ALL {
            for lang in Language::ALL {
                let n = letter_template_name(kind, lang);
                assert!(DEFAULTS.iter().any(|(d, _)| *d == n), "{n} missing");
            }
        }
    }

    #[test]
    fn syntax_error_is_rejected_with_its_line() {
        let src = "{% block title %}Mahnung{% endblock %}\n{% block salutation %}Hallo{% endblock %}\n{% block body %}\n{% if total %}\nzu zahlen: {{ total }\n{% endif %}{% endblock %}\n{% block closing %}Gruß{% endblock %}\n";
        let err = check_template("first_notice.de.j2", src).expect_err("syntax");
        match &err {
            Error::Template { line, reason, .. } => {
                assert_eq!(*line, 5, "{err}");
                assert!(reason.contains("syntax error"), "{err}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn unknown_variable_is_rejected_with_its_line_even_in_untaken_branch() {
        let src = "{% block title %}Mahnung{% endblock %}\n{% block salutation %}Hallo{% endblock %}\n{% block body %}\n{% if tone == \"never\" %}\n{{ debtor_iban }}\n{% endif %}\n{% endblock %}\n{% block closing %}Gruß{% endblock %}\n";
        let err = check_template("first_notice.de.j2", src).expect_err("unknown");
        assert_eq!(
            err.to_string().split(';').next().unwrap_or_default(),
            "template first_notice.de.j2, line 5: unknown variable `debtor_iban`"
        );
    }

    #[test]
    fn unknown_attribute_of_known_variable_is_rejected() {
        let src = "{% block title %}T{% endblock %}{% block salutation %}S{% endblock %}\n{% block body %}\n{{ payment.swift }}\n{% endblock %}{% block closing %}C{% endblock %}";
        let err = check_template("reminder.en.j2", src).expect_err("unknown attr");
        assert!(
            err.to_string()
                .starts_with("template reminder.en.j2, line 3: unknown variable `payment.swift`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_attribute_of_loop_variable_is_rejected_by_strict_render() {
        let src = "{% block title %}T{% endblock %}{% block salutation %}S{% endblock %}\n{% block body %}\n{% for inv in invoices %}\n{{ inv.nummer }}\n{% endfor %}\n{% endblock %}{% block closing %}C{% endblock %}";
        let err = check_template("reminder.de.j2", src).expect_err("loop attr");
        assert!(
            err.to_string()
                .starts_with("template reminder.de.j2, line 4:"),
            "{err}"
        );
    }

    #[test]
    fn unguarded_optional_part_is_rejected() {
        let src = "{% block title %}T{% endblock %}{% block salutation %}S{% endblock %}\n{% block body %}\nIBAN {{ payment.iban }}\n{% endblock %}{% block closing %}C{% endblock %}";
        let err = check_template("reminder.de.j2", src).expect_err("unguarded");
        assert!(
            err.to_string()
                .starts_with("template reminder.de.j2, line 3:"),
            "{err}"
        );
    }

    #[test]
    fn missing_block_and_unknown_name_are_rejected() {
        let src = "{% block title %}T{% endblock %}{% block body %}B{% endblock %}{% block closing %}C{% endblock %}";
        let err = check_template("reminder.de.j2", src).expect_err("missing");
        assert!(
            err.to_string().contains("missing block `salutation`"),
            "{err}"
        );
        let err = check_template("reminder.fr.j2", src).expect_err("name");
        assert!(err.to_string().contains("unknown template name"), "{err}");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(
            paragraphs("  a\n b \n\n\n c\n"),
            vec!["a b".to_owned(), "c".to_owned()]
        );
    }
}
