//! E-mail against a real SMTP server: Python's aiosmtpd (fetched once into the cache by
//! `deploy/dev-cluster/smtp`), listening on 127.0.0.1 and storing every message in a Maildir.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::services::{config, send};
use super::support::{free_port, repo, wait_for};

/// The SMTP server, stopped when dropped.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    async fn start() -> Smtp {
        let fetch = repo().join("deploy/dev-cluster/smtp");
        let out = Command::new(&fetch).stdin(Stdio::null()).output().expect("run deploy/dev-cluster/smtp");
        assert!(out.status.success(), "{} failed: {}", fetch.display(), String::from_utf8_lossy(&out.stderr));
        let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = free_port();
        let maildir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("maildir-{}-{port}", std::process::id()));
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let smtp = Smtp { child, port, maildir };
        wait_for(Duration::from_secs(20), "the SMTP server to listen", || async {
            TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(|e| e.to_string())
        })
        .await;
        smtp
    }

    /// The messages delivered so far, as text.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                out.extend(entries.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()));
            }
        }
        out
    }
}

#[tokio::test]
async fn email_is_delivered_to_a_real_smtp_server() {
    let smtp = Smtp::start().await;
    let cfg = config(
        &[
            ("service.email.ops", &format!("host: 127.0.0.1\nport: {}\nfrom: $from\n", smtp.port)),
            ("service.email.html", &format!("host: 127.0.0.1\nport: {}\nfrom: rollouts@example.org\nhtml: true\n", smtp.port)),
            ("template.html-body", "email:\n  subject: '[{{.rollout.metadata.namespace}}] {{.rollout.metadata.name}}'\n  body: '<b>{{.rollout.status.phase}}</b>'\n"),
        ],
        &[("from", "Rollouts <rollouts@example.org>")],
    );
    send(&cfg, "rollout-aborted", "ops", "alice@example.org, bob@example.org").await.unwrap();
    let messages = wait_for(Duration::from_secs(10), "the message in the Maildir", || async {
        let m = smtp.messages();
        if m.is_empty() { Err("none yet".to_string()) } else { Ok(m) }
    })
    .await;
    assert_eq!(messages.len(), 1, "one message for both recipients");
    let m = &messages[0];
    assert!(m.contains("From: Rollouts <rollouts@example.org>"), "{m}");
    assert!(m.contains("To: alice@example.org, bob@example.org"), "{m}");
    assert!(m.contains("Subject: Rollout demo has been aborted."), "{m}");
    assert!(m.contains("Content-Type: text/plain"), "{m}");
    assert!(m.contains("\r\n\r\nRollout demo has been aborted.") || m.contains("\n\nRollout demo has been aborted."), "the message is the body: {m}");

    send(&cfg, "html-body", "html", "carol@example.org").await.unwrap();
    let messages = wait_for(Duration::from_secs(10), "the second message", || async {
        let m = smtp.messages();
        if m.len() < 2 { Err(format!("{} so far", m.len())) } else { Ok(m) }
    })
    .await;
    let html = messages.iter().find(|m| m.contains("carol@example.org")).expect("carol's message");
    assert!(html.contains("Subject: [shop] demo"), "{html}");
    assert!(html.contains("Content-Type: text/html"), "{html}");
    assert!(html.contains("<b>Degraded</b>"), "{html}");
}

#[tokio::test]
async fn email_to_a_server_that_is_not_there_fails_with_a_retryable_error() {
    let port = free_port();
    let cfg = config(&[("service.email", &format!("host: 127.0.0.1\nport: {port}\nfrom: a@example.org\n"))], &[]);
    let cfg_fast = cfg;
    // Connection refused is transient: retried by the policy (3 retries, 1 s then 2 s, 4 s capped at 5 s).
    let started = std::time::Instant::now();
    let (e, attempts) = send(&cfg_fast, "rollout-aborted", "email", "x@example.org").await.unwrap_err();
    assert_eq!(attempts, 4, "{e:?}");
    assert!(e.retryable, "{e:?}");
    assert!(started.elapsed() >= Duration::from_secs(6), "waited between attempts: {:?}", started.elapsed());
    let (e, attempts) = send(&cfg_fast, "rollout-aborted", "email", " , ").await.unwrap_err();
    assert_eq!((e.message.as_str(), attempts), ("email: the recipient has no address", 1));
}
