//! AWS Signature Version 4 for CloudWatch and Amazon Managed Prometheus, with the
//! credentials of the AWS SDKs' default chain that need no AWS call.
//! (Being written: this stub fixes the interface.)

use std::time::SystemTime;

use super::Ctx;

/// AWS credentials.
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

/// The credentials of the default chain for `profile` (None: `$AWS_PROFILE`, else
/// `default`); every value found is marked for redaction in `ctx`.
pub fn credentials(_ctx: &Ctx<'_>, _profile: Option<&str>) -> Result<Credentials, String> {
    Err("AWS credentials are not read yet".to_string())
}

/// Signs `req` (its body in memory) for `service` in `region` at `now`.
pub fn sign(_req: &mut reqwest::Request, _creds: &Credentials, _region: &str, _service: &str, _now: SystemTime) -> Result<(), String> {
    Err("SigV4 signing is not written yet".to_string())
}
