//! Notifications for real: each service against a server on 127.0.0.1 that checks what the
//! service documents (a webhook, Slack's Web API, a Teams incoming webhook, a real SMTP server
//! started by the test), the controller's delivery (once per occurrence, retried), the CLI
//! through the binary, and an aborted rollout on the local control plane notifying each
//! subscription exactly once, also across a controller restart.

mod support;

#[path = "notifications/capture.rs"]
mod capture;

#[path = "notifications/services.rs"]
mod services;

#[path = "notifications/email.rs"]
mod email;

#[path = "notifications/delivery.rs"]
mod delivery;

#[path = "notifications/cli.rs"]
mod cli;

#[path = "notifications/e2e.rs"]
mod e2e;
