//! AWS Signature Version 4 for CloudWatch and Amazon Managed Prometheus, with the
//! credentials of the AWS SDKs' default chain that need no AWS call.
//!
//! The chain, in the SDKs' order: the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared credentials file
//! (`$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), then static keys in the
//! shared config file (`$AWS_CONFIG_FILE`, else `~/.aws/config`). What needs a call to AWS
//! (web identity tokens, `role_arn` profiles, SSO, the container and instance metadata
//! endpoints) is not done: such a setup gets an error that says so.
//!
//! Signing is the `aws-sigv4` crate's, at the time the caller gives (never the clock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::Ctx;

/// AWS credentials.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"*****")
            .field("secret_access_key", &"*****")
            .field("session_token", &self.session_token.as_ref().map(|_| "*****"))
            .finish()
    }
}

/// The credentials of the default chain for `profile` (None: `$AWS_PROFILE`, else
/// `default`); every value found is marked for redaction in `ctx`.
pub fn credentials(ctx: &Ctx<'_>, profile: Option<&str>) -> Result<Credentials, String> {
    credentials_with(ctx, &|name| std::env::var(name).ok(), profile)
}

/// [`credentials`] with the environment read through `var` (tests give their own).
pub fn credentials_with(ctx: &Ctx<'_>, var: &dyn Fn(&str) -> Option<String>, profile: Option<&str>) -> Result<Credentials, String> {
    let creds = credentials_from(var, profile)?;
    ctx.redact_also("AWS access key id", &creds.access_key_id);
    ctx.redact_also("AWS secret access key", &creds.secret_access_key);
    if let Some(token) = &creds.session_token {
        ctx.redact_also("AWS session token", token);
    }
    Ok(creds)
}

/// The region for `profile`: `spec` when set, else `$AWS_REGION`, else
/// `$AWS_DEFAULT_REGION`, else the profile's `region` in the shared config file.
pub fn region(spec: Option<&str>, profile: Option<&str>) -> Result<String, String> {
    region_with(&|name| std::env::var(name).ok(), spec, profile)
}

/// Signs `req` (its body in memory) for `service` in `region` at `now`.
pub fn sign(req: &mut reqwest::Request, creds: &Credentials, region: &str, service: &str, now: SystemTime) -> Result<(), String> {
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "rollouts",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the AWS request: {e}"))?
        .into();
    let mut headers = Vec::new();
    for (name, value) in req.headers() {
        let value = value.to_str().map_err(|_| format!("cannot sign the AWS request: header {name} is not text"))?;
        headers.push((name.as_str(), value));
    }
    let body = match req.body() {
        None => &[][..],
        Some(b) => b.as_bytes().ok_or("cannot sign the AWS request: its body is a stream")?,
    };
    let signable = SignableRequest::new(req.method().as_str(), req.url().as_str(), headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign the AWS request: {e}"))?;
    let (instructions, _signature) =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| format!("cannot sign the AWS request: {e}"))?.into_parts();
    let (new_headers, _query) = instructions.into_parts();
    for header in new_headers {
        let mut value = reqwest::header::HeaderValue::from_str(header.value())
            .map_err(|_| format!("cannot sign the AWS request: header {} is not text", header.name()))?;
        value.set_sensitive(header.sensitive());
        req.headers_mut().insert(header.name(), value);
    }
    Ok(())
}

/// The chain with the environment read through `var`.
fn credentials_from(var: &dyn Fn(&str) -> Option<String>, profile: Option<&str>) -> Result<Credentials, String> {
    let get = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
    let id = get(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]);
    let secret = get(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]);
    // The SDKs use the environment only when both halves are there.
    if let (Some(access_key_id), Some(secret_access_key)) = (id, secret) {
        return Ok(Credentials { access_key_id, secret_access_key, session_token: get(&["AWS_SESSION_TOKEN"]) });
    }
    let (profile, named) = match profile.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_string(), true),
        None => match get(&["AWS_PROFILE"]) {
            Some(p) => (p, true),
            None => ("default".to_string(), false),
        },
    };
    let credentials_file = shared_file(var, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = shared_file(var, "AWS_CONFIG_FILE", "config");
    let from_credentials = credentials_file.as_deref().map(|f| read_profile(f, &profile, false)).transpose()?.flatten();
    let from_config = config_file.as_deref().map(|f| read_profile(f, &profile, true)).transpose()?.flatten();
    let show = |f: &Option<PathBuf>| f.as_ref().map_or_else(|| "(no home directory)".to_string(), |p| p.display().to_string());
    if from_credentials.is_none() && from_config.is_none() {
        let why = if named { format!("AWS profile {profile:?} was not found") } else { "no AWS credentials were found".to_string() };
        return Err(format!(
            "{why}: looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, {} and {}",
            show(&credentials_file),
            show(&config_file)
        ));
    }
    // The credentials file wins over the config file, key by key, as in the SDKs.
    let mut keys = from_config.unwrap_or_default();
    keys.extend(from_credentials.unwrap_or_default());
    let key = |k: &str| keys.get(k).filter(|v| !v.is_empty()).cloned();
    match (key("aws_access_key_id"), key("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(Credentials { access_key_id, secret_access_key, session_token: key("aws_session_token") })
        }
        _ => {
            let needs_aws = ["role_arn", "web_identity_token_file", "credential_process", "sso_session", "sso_start_url"];
            match needs_aws.iter().find(|k| keys.contains_key(**k)) {
                Some(k) => Err(format!("AWS profile {profile:?} uses {k}, which this controller does not support: give static keys")),
                None => Err(format!("AWS profile {profile:?} has no aws_access_key_id and aws_secret_access_key")),
            }
        }
    }
}

/// [`region`] with the environment read through `var`.
pub fn region_with(var: &dyn Fn(&str) -> Option<String>, spec: Option<&str>, profile: Option<&str>) -> Result<String, String> {
    if let Some(r) = spec.filter(|r| !r.is_empty()) {
        return Ok(r.to_string());
    }
    if let Some(r) = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|n| var(n).filter(|v| !v.is_empty())) {
        return Ok(r);
    }
    let profile = profile.filter(|p| !p.is_empty()).map(str::to_string).or_else(|| var("AWS_PROFILE").filter(|p| !p.is_empty()));
    let profile = profile.as_deref().unwrap_or("default");
    let from_config = match shared_file(var, "AWS_CONFIG_FILE", "config") {
        Some(f) => read_profile(&f, profile, true)?.and_then(|keys| keys.get("region").cloned()).filter(|r| !r.is_empty()),
        None => None,
    };
    from_config.ok_or_else(|| "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS config file)".to_string())
}

/// The shared file named by `env`, else `~/.aws/<name>`.
fn shared_file(var: &dyn Fn(&str) -> Option<String>, env: &str, name: &str) -> Option<PathBuf> {
    match var(env).filter(|v| !v.is_empty()) {
        Some(path) => Some(expand_home(var, &path)),
        None => var("HOME").filter(|h| !h.is_empty()).map(|home| Path::new(&home).join(".aws").join(name)),
    }
}

fn expand_home(var: &dyn Fn(&str) -> Option<String>, path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), var("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The keys of `profile` in a shared file (None when the file or the profile is missing).
/// The config file names its sections `[profile NAME]` (and `[default]`); the credentials
/// file `[NAME]`.
fn read_profile(file: &Path, profile: &str, config: bool) -> Result<Option<BTreeMap<String, String>>, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    Ok(parse_profile(&text, profile, config))
}

/// Reads an AWS shared file (INI): sections, `key = value` lines, `#`/`;` comments.
fn parse_profile(text: &str, profile: &str, config: bool) -> Option<BTreeMap<String, String>> {
    let mut found: Option<BTreeMap<String, String>> = None;
    let mut in_profile = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let section = section.trim();
            let name = if config && section != "default" {
                section.strip_prefix("profile").filter(|rest| rest.starts_with(char::is_whitespace)).map(str::trim)
            } else {
                Some(section)
            };
            in_profile = name == Some(profile);
            if in_profile {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if !in_profile {
            continue;
        }
        if let (Some(keys), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
            keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn request(method: reqwest::Method, url: &str, headers: &[(&'static str, &str)], body: &str) -> reqwest::Request {
        let mut req = reqwest::Request::new(method, url.parse().unwrap());
        for (name, value) in headers {
            req.headers_mut().insert(*name, value.parse().unwrap());
        }
        if !body.is_empty() {
            *req.body_mut() = Some(body.to_string().into());
        }
        req
    }

    fn header(req: &reqwest::Request, name: &str) -> String {
        req.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }

    /// AWS's SigV4 test suite, `get-vanilla`: the exact Authorization header it documents.
    #[test]
    fn signs_the_get_vanilla_vector_of_the_aws_test_suite() {
        let mut req = request(reqwest::Method::GET, "https://example.amazonaws.com/", &[], "");
        sign(&mut req, &suite_credentials(), "us-east-1", "service", suite_time()).unwrap();
        assert_eq!(header(&req, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn signs_a_post_body_with_the_scope_of_its_time_region_and_service_and_the_session_token() {
        let headers = [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "GraniteServiceVersion20100801.GetMetricData")];
        let mut req = request(reqwest::Method::POST, "http://127.0.0.1:4566/", &headers, "{}");
        let mut creds = suite_credentials();
        creds.session_token = Some("token".into());
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599); // 2025-12-31T23:59:59Z
        sign(&mut req, &creds, "eu-west-1", "monitoring", at).unwrap();
        let auth = header(&req, "authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251231/eu-west-1/monitoring/aws4_request, "), "{auth}");
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"), "{auth}");
        assert_eq!(header(&req, "x-amz-date"), "20251231T235959Z");
        assert_eq!(header(&req, "x-amz-security-token"), "token");
        // Another body, another signature.
        let mut other = request(reqwest::Method::POST, "http://127.0.0.1:4566/", &headers, "{ }");
        sign(&mut other, &creds, "eu-west-1", "monitoring", at).unwrap();
        let sig = |a: &str| a.rsplit("Signature=").next().unwrap().to_string();
        assert_ne!(sig(&auth), sig(&header(&other, "authorization")));
    }

    #[test]
    fn the_environment_comes_first_and_needs_both_halves() {
        let vars = [("AWS_ACCESS_KEY_ID", "AKIAENV"), ("AWS_SECRET_ACCESS_KEY", "envsecret"), ("AWS_SESSION_TOKEN", "tok"), ("HOME", "/nonexistent")];
        let c = credentials_from(&env(&vars), None).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str(), c.session_token.as_deref()), ("AKIAENV", "envsecret", Some("tok")));
        let half = [("AWS_ACCESS_KEY_ID", "AKIAENV"), ("HOME", "/nonexistent")];
        let e = credentials_from(&env(&half), None).unwrap_err();
        assert!(e.starts_with("no AWS credentials were found"), "{e}");
        assert!(e.contains("/nonexistent/.aws/credentials"), "{e}");
        assert!(!e.contains("AKIAENV"), "{e}");
    }

    #[test]
    fn the_shared_files_by_profile() {
        let dir = std::env::temp_dir().join(format!("rollouts-sigv4-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds_file = dir.join("credentials");
        let config_file = dir.join("config");
        std::fs::write(
            &creds_file,
            "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=defaultsecret\n\n[team]\n\
             AWS_ACCESS_KEY_ID = AKIATEAM\naws_secret_access_key = teamsecret\naws_session_token = teamtoken\n",
        )
        .unwrap();
        std::fs::write(
            &config_file,
            "[default]\nregion = eu-central-1\n[profile cfg]\naws_access_key_id = AKIACFG\naws_secret_access_key = cfgsecret\nregion = ap-south-1\n\
             [profile assume]\nrole_arn = arn:aws:iam::123:role/x\nsource_profile = default\n",
        )
        .unwrap();
        let c = creds_file.to_str().unwrap();
        let g = config_file.to_str().unwrap();
        let base = [("AWS_SHARED_CREDENTIALS_FILE", c), ("AWS_CONFIG_FILE", g)];
        let key_of = |vars: &[(&str, &str)], profile| credentials_from(&env(vars), profile).map(|c| (c.access_key_id, c.session_token));
        assert_eq!(key_of(&base, None), Ok(("AKIADEFAULT".into(), None)));
        assert_eq!(key_of(&base, Some("team")), Ok(("AKIATEAM".into(), Some("teamtoken".into()))));
        let with_profile = [base[0], base[1], ("AWS_PROFILE", "team")];
        assert_eq!(key_of(&with_profile, None), Ok(("AKIATEAM".into(), Some("teamtoken".into()))));
        assert_eq!(key_of(&with_profile, Some("cfg")), Ok(("AKIACFG".into(), None)));
        let missing = key_of(&base, Some("nope")).unwrap_err();
        assert!(missing.starts_with("AWS profile \"nope\" was not found"), "{missing}");
        let assume = key_of(&base, Some("assume")).unwrap_err();
        assert!(assume.contains("uses role_arn"), "{assume}");

        assert_eq!(region_with(&env(&base), Some("us-west-2"), None), Ok("us-west-2".into()));
        let with_env = [base[0], base[1], ("AWS_DEFAULT_REGION", "sa-east-1")];
        assert_eq!(region_with(&env(&with_env), None, None), Ok("sa-east-1".into()));
        let both = [with_env[0], with_env[1], with_env[2], ("AWS_REGION", "us-east-2")];
        assert_eq!(region_with(&env(&both), None, None), Ok("us-east-2".into()));
        assert_eq!(region_with(&env(&base), None, None), Ok("eu-central-1".into()));
        assert_eq!(region_with(&env(&base), None, Some("cfg")), Ok("ap-south-1".into()));
        assert!(region_with(&env(&[("HOME", "/nonexistent")]), None, None).unwrap_err().starts_with("no AWS region"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn credentials_are_marked_for_redaction_and_never_debug_printed() {
        let context = rollouts_core::analysis::run::MeasureContext::default();
        let ctx = Ctx::new(None, "ns", SystemTime::UNIX_EPOCH, &context);
        let vars = [("AWS_ACCESS_KEY_ID", "AKIASECRETID"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t"), ("AWS_SESSION_TOKEN", "t0ken")];
        let creds = credentials_with(&ctx, &env(&vars), None).unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("AKIASECRETID") && !shown.contains("s3cr3t") && !shown.contains("t0ken"), "{shown}");
        let leaky = super::super::error_answer("AKIASECRETID s3cr3t t0ken".to_string());
        let redacted = ctx.redact(leaky).error.unwrap();
        assert!(!redacted.contains("AKIASECRETID") && !redacted.contains("s3cr3t") && !redacted.contains("t0ken"), "{redacted}");
    }
}
