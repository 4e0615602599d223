//! What went wrong in a cluster verb, in one sentence.

use std::fmt;

use crate::kubeapi::ConnectError;

/// A failed cluster verb. Printed as `error: <sentence>`; the process exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No kubeconfig, an unreadable one, or an unknown context.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The API server answered with an error status (`rollouts.argoproj.io "x" not found`).
    #[error("{}", describe_api(.0))]
    Api(#[source] kube::Error),
    /// The API server could not be reached or the answer could not be read.
    #[error("{}", describe_transport(.0))]
    Transport(#[source] kube::Error),
    /// The user asked for something the rollout cannot do; the message says why.
    #[error("{0}")]
    Refused(String),
}

impl From<kube::Error> for CliError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(_) => CliError::Api(e),
            _ => CliError::Transport(e),
        }
    }
}

impl CliError {
    /// A refusal with this message.
    pub fn refused(message: impl fmt::Display) -> Self {
        CliError::Refused(message.to_string())
    }

    /// Whether this is the API server's 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api(kube::Error::Api(s)) if s.code == 404)
    }
}

/// The API server's own message, which names the object the way kubectl does; a 404 for the
/// whole resource type means the CRDs are not installed.
fn describe_api(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 && !s.message.contains('"') => format!(
            "the server does not serve this resource ({}): are the Argo Rollouts CRDs installed?",
            s.message.trim()
        ),
        kube::Error::Api(s) if s.message.is_empty() => format!("the API server answered {} {}", s.code, s.reason),
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn describe_transport(e: &kube::Error) -> String {
    let mut text = format!("cannot talk to the API server: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, message: &str) -> CliError {
        CliError::from(kube::Error::Api(Status::failure(message, "NotFound").with_code(code).boxed()))
    }

    #[test]
    fn the_api_servers_not_found_message_is_shown_as_kubectl_shows_it() {
        let e = api(404, r#"rollouts.argoproj.io "nope" not found"#);
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), r#"rollouts.argoproj.io "nope" not found"#);
    }

    #[test]
    fn a_404_for_the_resource_type_means_the_crds_are_missing() {
        let e = api(404, "the server could not find the requested resource");
        assert_eq!(
            e.to_string(),
            "the server does not serve this resource (the server could not find the requested resource): \
             are the Argo Rollouts CRDs installed?"
        );
    }
}
