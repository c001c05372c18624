//! The channels a letter leaves by: email over SMTP (`lettre`, rustls, no OpenSSL) and post
//! through a print-and-mail provider interface, implemented as a spool directory that a print
//! shop's pickup takes (`{job}.pdf` plus `{job}.json`, the JSON written last by rename, so a
//! job is visible only when complete). With a master key both files are sealed under the
//! debtor's data key (`mahnwerk_docstore::sealed`, ADR 006), so a job left in the spool is
//! unreadable once the debtor is erased; the pickup reads a job with [`PostSpool::read`]
//! (`mahnwerk` with the same `MAHNWERK_MASTER_KEY`).

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What a channel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the provider's id (Message-ID, spool job id).
    Sent(String),
    /// Refused for good (SMTP 5xx, invalid address): record, maybe fall back.
    Permanent(String),
    /// Not accepted, nothing went out (SMTP 4xx, connection refused): retry later.
    Transient(String),
    /// Broken off mid-conversation: it may have gone out. Flag for review, never retry.
    Unknown(String),
}

/// How to reach the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain SMTP (a local relay or a test server on loopback).
    #[default]
    None,
    /// STARTTLS on the submission port (587).
    StartTls,
    /// Implicit TLS (465).
    Tls,
}

#[derive(Debug, Clone, Default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Per-command timeout.
    pub timeout: Option<Duration>,
}

/// One email to send.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub from: &'a str,
    pub reply_to: Option<&'a str>,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    pub attachment_name: &'a str,
    pub pdf: &'a [u8],
    /// The Message-ID to use (without angle brackets), stable per ledger row.
    pub message_id: &'a str,
}

#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender").finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(c: &SmtpConfig) -> Result<Self, String> {
        let builder = match c.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .map_err(|e| e.to_string())?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host).map_err(|e| e.to_string())?
            }
        };
        let mut builder = builder
            .port(c.port)
            .timeout(Some(c.timeout.unwrap_or(Duration::from_secs(30))));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }

    /// Build the message; an address that does not parse is a permanent failure.
    fn message(e: &Email<'_>) -> Result<Message, Outcome> {
        let mbox = |field: &str, v: &str| {
            v.parse::<Mailbox>()
                .map_err(|err| Outcome::Permanent(format!("invalid {field} address: {err}")))
        };
        let mut b = Message::builder()
            .from(mbox("from", e.from)?)
            .to(mbox("to", e.to)?)
            .subject(e.subject)
            .message_id(Some(format!("<{}>", e.message_id)));
        if let Some(r) = e.reply_to {
            b = b.reply_to(mbox("reply-to", r)?);
        }
        let pdf = ContentType::parse("application/pdf")
            .map_err(|err| Outcome::Permanent(err.to_string()))?;
        b.multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(
                    e.text.to_owned(),
                    e.html.to_owned(),
                ))
                .singlepart(
                    Attachment::new(e.attachment_name.to_owned()).body(e.pdf.to_vec(), pdf),
                ),
        )
        .map_err(|err| Outcome::Permanent(format!("message: {err}")))
    }

    pub async fn send(&self, e: &Email<'_>) -> Outcome {
        let msg = match Self::message(e) {
            Ok(m) => m,
            Err(o) => return o,
        };
        match self.transport.send(msg).await {
            Ok(_) => Outcome::Sent(e.message_id.to_owned()),
            Err(err) => classify(&err),
        }
    }
}

fn classify(err: &lettre::transport::smtp::Error) -> Outcome {
    let code = err.status().map(|c| c.to_string()).unwrap_or_default();
    if err.is_permanent() {
        return Outcome::Permanent(format!("smtp {code}"));
    }
    if err.is_transient() {
        return Outcome::Transient(format!("smtp {code}"));
    }
    // Refused before a word was exchanged: nothing can have gone out.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return Outcome::Transient("smtp connection refused".into());
        }
        source = s.source();
    }
    Outcome::Unknown(format!("smtp conversation broken off: {err}"))
}

/// A print job as the pickup reads it.
#[derive(Debug, Clone, Serialize)]
pub struct PostJob<'a> {
    pub job_id: &'a str,
    pub tenant: &'a str,
    pub case_id: &'a str,
    pub letter_id: &'a str,
    pub document_sha256: &'a str,
    /// The address lines as printed in the window.
    pub address: &'a [String],
    /// ISO 3166-1 alpha-2 of the destination.
    pub country: &'a str,
    /// Einschreiben.
    pub registered: bool,
    /// Einschreiben mit Rückschein.
    pub return_receipt: bool,
    pub colour: bool,
    pub duplex: bool,
}

/// A spool directory for a print-and-mail provider.
#[derive(Debug, Clone)]
pub struct PostSpool {
    pub dir: PathBuf,
}

impl PostSpool {
    /// Spool `job`, sealed for `owner` when the process has data keys.
    pub async fn submit(
        &self,
        job: &PostJob<'_>,
        pdf: &[u8],
        owner: &mahnwerk_docstore::Owner,
    ) -> Outcome {
        match self.write(job, pdf, owner).await {
            Ok(()) => Outcome::Sent(job.job_id.to_owned()),
            // The debtor's key is gone: no letter can be spooled for them, ever.
            Err(e @ mahnwerk_docstore::Error::Erased { .. }) => Outcome::Permanent(e.to_string()),
            // Nothing visible to the pickup until the JSON is renamed into place.
            Err(e) => Outcome::Transient(format!("spool: {e}")),
        }
    }

    fn context(job_id: &str, ext: &str) -> String {
        format!("post-spool/{job_id}.{ext}")
    }

    async fn write(
        &self,
        job: &PostJob<'_>,
        pdf: &[u8],
        owner: &mahnwerk_docstore::Owner,
    ) -> mahnwerk_docstore::Result<()> {
        use mahnwerk_docstore::sealed::seal_if_keys;
        let io = |e: std::io::Error| mahnwerk_docstore::Error::Storage(e.to_string());
        let json = serde_json::to_vec_pretty(job)
            .map_err(|e| mahnwerk_docstore::Error::Storage(e.to_string()))?;
        let pdf = seal_if_keys(owner, &Self::context(job.job_id, "pdf"), pdf).await?;
        let json = seal_if_keys(owner, &Self::context(job.job_id, "json"), &json).await?;
        // Both files durable (synced, renamed, directory synced) before the send is recorded
        // as done: a power cut must not lose a letter the ledger calls sent. The JSON last.
        let dir = self.dir.clone();
        let id = job.job_id.to_owned();
        tokio::task::spawn_blocking(move || {
            use mahnwerk_docstore::{create_dir_durably, write_durably};
            create_dir_durably(&dir)?;
            write_durably(&dir.join(format!("{id}.pdf")), &pdf)?;
            write_durably(&dir.join(format!("{id}.json")), &json)
        })
        .await
        .map_err(|e| mahnwerk_docstore::Error::Storage(format!("spool task: {e}")))?
        .map_err(io)
    }

    /// A spooled job as the pickup needs it: the job JSON and the PDF, opened with this
    /// process's data keys when sealed (`Error::Erased` once the debtor was erased).
    pub async fn read(
        &self,
        job_id: &str,
    ) -> mahnwerk_docstore::Result<(serde_json::Value, Vec<u8>)> {
        use mahnwerk_docstore::sealed::open;
        let io = |e: std::io::Error| mahnwerk_docstore::Error::Storage(e.to_string());
        let json = tokio::fs::read(self.dir.join(format!("{job_id}.json")))
            .await
            .map_err(io)?;
        let pdf = tokio::fs::read(self.dir.join(format!("{job_id}.pdf")))
            .await
            .map_err(io)?;
        let json = open(&json, &Self::context(job_id, "json")).await?;
        let pdf = open(&pdf, &Self::context(job_id, "pdf")).await?;
        let job = serde_json::from_slice(&json)
            .map_err(|e| mahnwerk_docstore::Error::Storage(format!("{job_id}.json: {e}")))?;
        Ok((job, pdf))
    }
}
