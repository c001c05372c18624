//! A tenant's letter configuration, versioned as events on `{tenant}/letterhead/default`:
//! `letterhead.updated.v1` (the [`LetterSettings`]) and `template.uploaded.v1` (a checked
//! template override). The stream version is the configuration version a letter records.

use crate::error::{Error, Result};
use mahnwerk_domain::{StreamId, TenantId};
use mahnwerk_eventlog::EventLog;
use mahnwerk_letters::events::{LetterSettings, TemplateUploaded};
use mahnwerk_letters::{LetterRenderer, TemplateSet};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const LETTERHEAD_UPDATED: &str = "letterhead.updated.v1";
pub const TEMPLATE_UPLOADED: &str = "template.uploaded.v1";

pub fn stream(tenant: &TenantId) -> StreamId {
    StreamId::new(tenant, "letterhead", "default")
}

/// The configuration folded from the stream.
#[derive(Debug, Clone, Default)]
pub struct TenantConfig {
    /// Stream version (0: nothing configured).
    pub version: u64,
    /// Version of the last `letterhead.updated.v1` or `template.uploaded.v1` (what
    /// `PutLetterhead` / `PutTemplate` returned): with it a letter names the letterhead and
    /// the template sources it was made with.
    pub letterhead_version: u64,
    pub settings: Option<LetterSettings>,
    pub templates: BTreeMap<String, String>,
}

pub async fn load(log: &EventLog, tenant: &TenantId) -> Result<TenantConfig> {
    let stream = stream(tenant);
    let mut cfg = TenantConfig::default();
    let mut from = 1;
    loop {
        let events = log.read_stream(&stream, from, 500).await?;
        let Some(last) = events.last() else { break };
        from = last.version + 1;
        for e in &events {
            cfg.version = e.version;
            match e.event_type.as_str() {
                LETTERHEAD_UPDATED => {
                    if let Ok(s) = serde_json::from_value::<LetterSettings>(e.payload.clone()) {
                        cfg.settings = Some(s);
                        cfg.letterhead_version = e.version;
                    }
                }
                TEMPLATE_UPLOADED => {
                    if let Ok(t) = serde_json::from_value::<TemplateUploaded>(e.payload.clone()) {
                        cfg.templates.insert(t.name, t.source);
                        cfg.letterhead_version = e.version;
                    }
                }
                _ => {}
            }
        }
        if events.len() < 500 {
            break;
        }
    }
    Ok(cfg)
}

/// A tenant's template overrides and the renderer built from them.
type TenantRenderer = (BTreeMap<String, String>, Arc<LetterRenderer>);

/// Renderers by tenant and template version: fonts and templates load once, and a tenant's
/// override takes effect with the next letter.
#[derive(Debug, Default, Clone)]
pub struct Renderers {
    default: Arc<std::sync::OnceLock<Arc<LetterRenderer>>>,
    by_tenant: Arc<Mutex<HashMap<String, TenantRenderer>>>,
}

impl Renderers {
    pub fn default_renderer(&self) -> Arc<LetterRenderer> {
        self.default
            .get_or_init(|| Arc::new(LetterRenderer::new(TemplateSet::defaults())))
            .clone()
    }

    pub fn for_tenant(&self, tenant: &TenantId, cfg: &TenantConfig) -> Result<Arc<LetterRenderer>> {
        if cfg.templates.is_empty() {
            return Ok(self.default_renderer());
        }
        let mut map = self
            .by_tenant
            .lock()
            .map_err(|_| Error::Precondition("renderer cache poisoned".into()))?;
        if let Some((templates, r)) = map.get(tenant.as_str())
            && templates == &cfg.templates
        {
            return Ok(r.clone());
        }
        let set = TemplateSet::with_overrides(cfg.templates.clone())?;
        let r = Arc::new(LetterRenderer::new(set));
        map.insert(
            tenant.as_str().to_owned(),
            (cfg.templates.clone(), r.clone()),
        );
        Ok(r)
    }
}
