//! The e-mail service: SMTP (lettre over rustls). The recipient is one address or several,
//! comma-separated; the subject is the template's `email.subject`, the body its `email.body`
//! or else the message. Options: `host`, `port` (465: TLS from the start; otherwise STARTTLS
//! when the server offers it), `username` and `password` (AUTH when a username is set),
//! `from`, `html` (a text/html body), `insecure_skip_verify`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::SendError;
use crate::notifications::subscriptions::Destination;
use crate::notifications::templates::Notification;

#[derive(Deserialize)]
pub struct Options {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub html: bool,
}

pub struct Email {
    pub opts: Options,
}

/// The SMTP conversation's time limit.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The addresses of a recipient: comma-separated, trimmed.
pub fn addresses(recipient: &str) -> Vec<String> {
    recipient.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()
}

impl Email {
    /// The message to send to `recipient`.
    pub fn message(&self, n: &Notification, recipient: &str) -> Result<Message, SendError> {
        let from: Mailbox = self
            .opts
            .from
            .parse()
            .map_err(|e| SendError::permanent(format!("email: the from address {:?} is not valid: {e}", self.opts.from)))?;
        let to = addresses(recipient);
        if to.is_empty() {
            return Err(SendError::permanent("email: the recipient has no address"));
        }
        let mut builder = Message::builder().from(from);
        for a in &to {
            let mailbox: Mailbox =
                a.parse().map_err(|e| SendError::permanent(format!("email: the address {a:?} is not valid: {e}")))?;
            builder = builder.to(mailbox);
        }
        let (subject, body) = match &n.email {
            Some(e) => (e.subject.clone(), if e.body.is_empty() { n.message.clone() } else { e.body.clone() }),
            None => (String::new(), n.message.clone()),
        };
        let content_type = if self.opts.html { ContentType::TEXT_HTML } else { ContentType::TEXT_PLAIN };
        builder
            .subject(subject)
            .header(content_type)
            .body(body)
            .map_err(|e| SendError::permanent(format!("email: cannot build the message: {e}")))
    }

    pub async fn send(&self, n: &Notification, dest: &Destination) -> Result<(), SendError> {
        if self.opts.host.is_empty() || self.opts.port == 0 {
            return Err(SendError::permanent(format!("email {}: host and port must be configured", dest.service)));
        }
        let message = self.message(n, &dest.recipient)?;
        crate::providers::http::install_crypto();
        let tls = TlsParameters::builder(self.opts.host.clone())
            .dangerous_accept_invalid_certs(self.opts.insecure_skip_verify)
            .build_rustls()
            .map_err(|e| SendError::permanent(format!("email {}: TLS setup: {e}", dest.service)))?;
        let tls = if self.opts.port == 465 { Tls::Wrapper(tls) } else { Tls::Opportunistic(tls) };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.opts.host.clone())
            .port(self.opts.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if !self.opts.username.is_empty() {
            transport = transport.credentials(Credentials::new(self.opts.username.clone(), self.opts.password.clone()));
        }
        match transport.build().send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("email {}: {e}", dest.service);
                if e.is_permanent() { Err(SendError::permanent(text)) } else { Err(SendError::transient(text)) }
            }
        }
    }
}
