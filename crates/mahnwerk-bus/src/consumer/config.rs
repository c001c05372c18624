//! Consumer settings, counters, and the subject filters of a consumer's durables.

use crate::{BusConfig, Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable name (with `-p{n}` per partition when partitioned); also the inbox key and the
    /// dead-letter and replay subject suffix.
    pub name: String,
    /// Subject filter written against the public subjects, e.g. `mahnwerk.events.*.case.>`.
    /// A filter for the older five-token layout (`….case.invoice.issued.v1`) still matches.
    pub filter_subject: String,
    /// Further filters the consumer also takes (JetStream's `filter_subjects`): the events of
    /// all filters arrive in log order, one at a time, as with one. A service that needs a
    /// few event types names them instead of receiving (and acking) everything of a kind.
    pub also_filter_subjects: Vec<String>,
    /// How long the server waits for an ack before redelivering (process crashed).
    pub ack_wait: Duration,
    /// Attempts a [`HandlerError::Permanent`] failure gets before the event is dead-lettered
    /// (1: at once). Transient failures are retried without limit.
    pub max_attempts: u32,
    /// Pause before retry n+1 after a transient failure; the last entry repeats (the cap).
    pub backoff: Vec<Duration>,
    /// Deliveries the server makes at most; the last one is dead-lettered as crash-poison
    /// instead of being handled (0: no bound).
    pub max_deliver: i64,
    /// Pin each partition to one instance (pinned-client priority group) instead of letting
    /// the server hand each message to any waiting instance. Fixed when the durable consumer is
    /// created.
    pub pinned: bool,
    /// With `pinned`: how long a partition stays pinned to an instance that stopped pulling
    /// before the server moves it to a standby instance.
    pub pin_ttl: Duration,
    /// Counters of what this consumer did (shared by clones; for tests and health checks).
    pub stats: Arc<ConsumerStats>,
}

/// What a consumer did since it started.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events whose handler committed.
    pub handled: AtomicU64,
    /// Deliveries the inbox recognised as handled before.
    pub duplicates: AtomicU64,
    /// Transient failures retried in place.
    pub retries: AtomicU64,
    /// Acks (or terms) the server did not confirm, retried.
    pub ack_failures: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Dead-letter publishes the server did not confirm, retried.
    pub dead_letter_failures: AtomicU64,
}

impl ConsumerStats {
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConsumerConfig {
    pub fn new(name: &str, bus: &BusConfig, filter: &str) -> Self {
        Self {
            name: name.to_owned(),
            filter_subject: format!("{}.{filter}", bus.subject_prefix),
            also_filter_subjects: Vec::new(),
            ack_wait: Duration::from_secs(30),
            max_attempts: 1,
            backoff: vec![
                Duration::from_millis(100),
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(5),
                Duration::from_secs(10),
            ],
            max_deliver: 5,
            pinned: false,
            pin_ttl: Duration::from_secs(30),
            stats: Arc::default(),
        }
    }

    /// [`ConsumerConfig::new`] taking the events of any of `filters` (each written as for
    /// `new`, after the bus prefix).
    pub fn with_filters(name: &str, bus: &BusConfig, filters: &[&str]) -> Self {
        let mut config = Self::new(name, bus, filters.first().copied().unwrap_or(">"));
        config.also_filter_subjects = filters
            .iter()
            .skip(1)
            .map(|f| format!("{}.{f}", bus.subject_prefix))
            .collect();
        config
    }

    /// The filters of one source's durable consumer: `(filter_subject, filter_subjects)`,
    /// one of them empty as JetStream requires.
    pub(super) fn durable_filters(
        &self,
        bus: &BusConfig,
        partition: Option<u16>,
    ) -> Result<(String, Vec<String>)> {
        let mut all = Vec::with_capacity(1 + self.also_filter_subjects.len());
        for f in std::iter::once(&self.filter_subject).chain(&self.also_filter_subjects) {
            all.push(partition_filter(bus, f, partition)?);
        }
        Ok(if all.len() == 1 {
            (all.remove(0), Vec::new())
        } else {
            (String::new(), all)
        })
    }

    pub(super) fn pause(&self, attempt: u32) -> Duration {
        let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// The filter of one partition: the consumer's filter (public six-token subjects) followed by
/// the partition token. `None` for an unpartitioned bus (then the filter is used as given, a
/// five-token one extended by `.*`).
pub fn partition_filter(
    bus: &BusConfig,
    filter_subject: &str,
    partition: Option<u16>,
) -> Result<String> {
    const TOKENS: usize = 6;
    let prefix = format!("{}.", bus.subject_prefix);
    let Some(rest) = filter_subject.strip_prefix(&prefix) else {
        return match partition {
            None => Ok(filter_subject.to_owned()),
            Some(_) => Err(Error::Filter(format!(
                "{filter_subject:?} does not start with {prefix:?}"
            ))),
        };
    };
    let mut tokens: Vec<&str> = rest.split('.').collect();
    let full = tokens.last() == Some(&">");
    if full {
        tokens.pop();
    }
    let Some(p) = partition else {
        if !full && tokens.len() == TOKENS - 1 {
            return Ok(format!("{filter_subject}.*"));
        }
        return Ok(filter_subject.to_owned());
    };
    if full && tokens.len() < TOKENS {
        tokens.resize(TOKENS, "*");
    } else if !full && tokens.len() == TOKENS - 1 {
        tokens.push("*");
    }
    if tokens.len() != TOKENS {
        return Err(Error::Filter(format!(
            "{filter_subject:?} must select subjects {prefix}{{tenant}}.{{kind}}.{{a}}.{{b}}.{{vN}}.{{id}} \
             (six tokens after the prefix, or ending in '>') to be partitioned"
        )));
    }
    Ok(format!("{prefix}{}.{p}", tokens.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_filters_append_the_partition_token() {
        let bus = BusConfig::with_namespace("mw").with_partitions(4);
        let f = |filter: &str, p| partition_filter(&bus, &format!("mw.events.{filter}"), p);
        assert_eq!(f(">", Some(2)).unwrap(), "mw.events.*.*.*.*.*.*.2");
        assert_eq!(
            f("*.case.>", Some(0)).unwrap(),
            "mw.events.*.case.*.*.*.*.0"
        );
        assert_eq!(
            f("acme.case.invoice.issued.v1", Some(3)).unwrap(),
            "mw.events.acme.case.invoice.issued.v1.*.3"
        );
        assert_eq!(
            f("acme.case.invoice.issued.v1.c1", Some(1)).unwrap(),
            "mw.events.acme.case.invoice.issued.v1.c1.1"
        );
        assert!(f("acme.case.invoice", Some(1)).is_err());
        assert!(partition_filter(&bus, "other.>", Some(1)).is_err());
        // Unpartitioned: as given, the old five-token layout extended by the id token.
        assert_eq!(f(">", None).unwrap(), "mw.events.>");
        assert_eq!(
            f("*.case.invoice.issued.v1", None).unwrap(),
            "mw.events.*.case.invoice.issued.v1.*"
        );
    }
}
