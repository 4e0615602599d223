//! OAuth2 client credentials for `prometheus` and `web` (`authentication.oauth2`).
//! (Being written: this stub fixes the interface.)

use serde_json::Value;

use super::Ctx;

/// A bearer token from `oauth2: {tokenUrl, clientId, clientSecret, scopes}`; the secret and
/// the token are marked for redaction in `ctx`.
pub async fn token(_ctx: &Ctx<'_>, _oauth2: &Value, _client: &reqwest::Client) -> Result<String, String> {
    Err("OAuth2 is not written yet".to_string())
}
