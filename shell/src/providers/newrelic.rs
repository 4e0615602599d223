//! `newRelic`: an NRQL query through NerdGraph, New Relic's GraphQL API. One row is the
//! result as a map of its fields; several rows are a list of such maps.
//!
//! The account comes from a Secret in the controller's namespace (`profile`, default
//! `newrelic`): `personal-api-key`, `account-id`, optional `region` (`us` by default) and
//! `base-url-nerdgraph` (which wins over the region's endpoint).

use std::collections::BTreeMap;
use std::time::Duration;

use rollouts_core::api::NewRelicMetric;
use serde_json::{json, Value};

use super::http;
use super::{value_answer, Ctx, Measured, Provider};

/// The Secret read when the metric names no `profile`.
pub const DEFAULT_PROFILE: &str = "newrelic";
/// NRQL's own timeout, seconds, when the metric sets none.
const DEFAULT_NRQL_TIMEOUT: i64 = 5;
/// The HTTP timeout of New Relic's Go client, which Argo uses.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The GraphQL document Argo sends: the query's rows, nothing else.
pub const NRQL_QUERY: &str = "query (
  $query: Nrql!,
  $accountId: Int!,
  $timeout: Seconds!
)
{
  actor {
    account(id: $accountId) {
      nrql(query: $query, timeout: $timeout) {
        results
      }
    }
  }
}
";

/// Where and as whom NerdGraph is asked. Deliberately not `Debug`: it holds the key.
pub struct Account {
    /// The NerdGraph endpoint.
    pub nerdgraph_url: String,
    /// Sent as `API-Key`.
    pub api_key: String,
    /// The account the NRQL runs in.
    pub account_id: i64,
}

/// The account a profile Secret describes.
pub fn account_of(values: &BTreeMap<String, String>) -> Result<Account, String> {
    let api_key = values.get("personal-api-key").filter(|v| !v.is_empty());
    let account_id = values.get("account-id").filter(|v| !v.is_empty());
    let (Some(api_key), Some(account_id)) = (api_key, account_id) else {
        return Err("account ID or personal API key not found".to_string());
    };
    let region = values.get("region").map_or("us", String::as_str);
    let mut nerdgraph_url = region_endpoint(region)?.to_string();
    if let Some(url) = values.get("base-url-nerdgraph").filter(|u| !u.is_empty()) {
        nerdgraph_url = url.clone();
    }
    let account_id = account_id
        .parse::<i64>()
        .map_err(|_| format!("could not parse account ID: strconv.Atoi: parsing {account_id:?}: invalid syntax"))?;
    Ok(Account { nerdgraph_url, api_key: api_key.clone(), account_id })
}

/// The NerdGraph endpoint of a New Relic region (the names New Relic's Go client accepts).
pub fn region_endpoint(region: &str) -> Result<&'static str, String> {
    match region.to_ascii_lowercase().as_str() {
        "us" => Ok("https://api.newrelic.com/graphql"),
        "eu" => Ok("https://api.eu.newrelic.com/graphql"),
        "jp" => Ok("https://api.jp.newrelic.com/graphql"),
        "gov" | "fedramp" => Ok("https://gov-api.newrelic.com/graphql"),
        "staging" => Ok("https://staging-api.newrelic.com/graphql"),
        "local" => Ok("http://localhost:3000/graphql"),
        _ => Err(format!("unknown region: {region}")),
    }
}

impl Provider for NewRelicMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let timeout = nrql_timeout(self.timeout)?;
        let profile = self.profile.as_deref().filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PROFILE);
        let Some(values) = ctx.secret(None, profile).await? else {
            return Err(format!("secrets \"{profile}\" not found in namespace {}", ctx.controller_namespace()));
        };
        let account = account_of(&values)?;
        let mut answer = ask(&account, &self.query, timeout).await?;
        answer.metadata.insert("ResolvedNewRelicQuery".to_string(), self.query.clone());
        Ok(answer)
    }
}

/// NRQL's timeout in seconds: default 5, never negative.
pub fn nrql_timeout(timeout: Option<i64>) -> Result<i64, String> {
    match timeout.unwrap_or(DEFAULT_NRQL_TIMEOUT) {
        t if t < 0 => Err("timeout value needs to be a positive value".to_string()),
        t => Ok(t),
    }
}

/// Runs `nrql` in the account and reads the rows.
pub async fn ask(account: &Account, nrql: &str, timeout: i64) -> Measured {
    let client = http::client(HTTP_TIMEOUT, false)?;
    let body = json!({
        "query": NRQL_QUERY,
        "variables": {"accountId": account.account_id, "query": nrql, "timeout": timeout},
    });
    let req = client
        .post(&account.nerdgraph_url)
        .header("Content-Type", "application/json")
        .header("API-Key", &account.api_key)
        .header("User-Agent", concat!("rollouts/", env!("CARGO_PKG_VERSION"), " (Argo Rollouts compatible)"))
        .body(body.to_string());
    let (status, text) = http::send_text(req).await?;
    nrql_answer(status, &text)
}

/// A NerdGraph response, judged as New Relic's Go client and Argo do.
pub fn nrql_answer(status: u16, text: &str) -> Measured {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let errors: Vec<&Value> = body.get("errors").and_then(Value::as_array).into_iter().flatten().collect();
    let messages: Vec<&str> = errors.iter().filter_map(|e| e.get("message")).filter_map(Value::as_str).filter(|m| !m.is_empty()).collect();
    if !(200..300).contains(&status) {
        let bad_key = errors.iter().any(|e| e.pointer("/extensions/error_code").and_then(Value::as_str) == Some("BAD_API_KEY"));
        if !errors.is_empty() && (status == 401 || bad_key) {
            return Err("401 response returned: Invalid credentials provided. Missing API key or an invalid API key was provided.".to_string());
        }
        if status == 402 {
            return Err("Payment Required".to_string());
        }
        return Err(match messages.is_empty() {
            true => format!("{status} response returned"),
            false => format!("{status} response returned: {}", messages.join(", ")),
        });
    }
    // A deprecation notice comes with the data; New Relic's client ignores it.
    let deprecated = messages.iter().any(|m| m.starts_with("This field is deprecated!"));
    if !messages.is_empty() && !deprecated {
        return Err(messages.join(", "));
    }
    if body.is_null() {
        return Err("could not parse the NerdGraph response as JSON".to_string());
    }
    let rows = body.pointer("/data/actor/account/nrql/results").and_then(Value::as_array).cloned().unwrap_or_default();
    match rows.as_slice() {
        [] => Err("no results returned from NRQL query".to_string()),
        [row] if row.as_object().is_none_or(|r| r.is_empty()) => Err("no results returned from NRQL query".to_string()),
        [row] => Ok(value_answer(row.clone())),
        _ => Ok(value_answer(Value::Array(rows))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::vendor_stub::start;
    use super::*;
    use rollouts_core::analysis::condition::eval_condition;

    fn account(url: String) -> Account {
        Account { nerdgraph_url: url, api_key: "NRAK-the-key".to_string(), account_id: 1_234_567 }
    }

    fn nerdgraph(results: Value) -> String {
        json!({"data": {"actor": {"account": {"nrql": {"results": results}}}}}).to_string()
    }

    const NRQL: &str = "SELECT percentage(count(*), WHERE error IS false) AS successRate FROM Transaction WHERE appName = 'canary'";

    #[tokio::test]
    async fn one_row_is_the_result_and_the_request_is_nerdgraphs() {
        let stub = start(|_| (200, nerdgraph(json!([{"successRate": 99.5}])))).await;
        let answer = ask(&account(format!("{}/graphql", stub.base)), NRQL, 5).await.unwrap();
        assert_eq!(answer, value_answer(json!({"successRate": 99.5})));
        assert!(eval_condition(&answer.value, "result.successRate >= 95").unwrap());

        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/graphql"));
        assert!(r.query.is_empty());
        assert_eq!(r.header("api-key"), Some("NRAK-the-key"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body, json!({"query": NRQL_QUERY, "variables": {"accountId": 1_234_567, "query": NRQL, "timeout": 5}}));
    }

    #[tokio::test]
    async fn a_failing_row_several_rows_no_rows_and_errors() {
        let stub = start(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            match body.pointer("/variables/query").and_then(Value::as_str).unwrap_or_default() {
                "low" => (200, nerdgraph(json!([{"successRate": 80.0}]))),
                "facets" => (200, nerdgraph(json!([{"facet": "a", "count": 1}, {"facet": "b", "count": 2}]))),
                "none" => (200, nerdgraph(json!([]))),
                "empty-row" => (200, nerdgraph(json!([{}]))),
                "bad-nrql" => (200, json!({"data": {"actor": {"account": {"nrql": null}}}, "errors": [{"message": "NRQL Syntax Error"}]}).to_string()),
                "bad-key" => (200, json!({"errors": [{"message": "Invalid API key", "extensions": {"error_code": "BAD_API_KEY"}}]}).to_string()),
                "unauthorized" => (401, json!({"errors": [{"message": "Unauthorized"}]}).to_string()),
                _ => (503, "upstream unavailable".to_string()),
            }
        })
        .await;
        let a = account(format!("{}/graphql", stub.base));
        let low = ask(&a, "low", 5).await.unwrap();
        assert!(!eval_condition(&low.value, "result.successRate >= 95").unwrap());
        let facets = ask(&a, "facets", 5).await.unwrap();
        assert_eq!(facets.value, json!([{"facet": "a", "count": 1}, {"facet": "b", "count": 2}]));
        assert_eq!(ask(&a, "none", 5).await.unwrap_err(), "no results returned from NRQL query");
        assert_eq!(ask(&a, "empty-row", 5).await.unwrap_err(), "no results returned from NRQL query");
        assert_eq!(ask(&a, "bad-nrql", 5).await.unwrap_err(), "NRQL Syntax Error");
        // A 200 with an error is an error, whatever its code.
        assert_eq!(ask(&a, "bad-key", 5).await.unwrap_err(), "Invalid API key");
        assert!(ask(&a, "unauthorized", 5).await.unwrap_err().starts_with("401 response returned: Invalid credentials provided."));
        assert_eq!(ask(&a, "down", 5).await.unwrap_err(), "503 response returned");
        assert_eq!(stub.seen().len(), 8);
    }

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_profile_secret_gives_the_account_and_the_regions_endpoint() {
        let us = account_of(&secret(&[("personal-api-key", "k"), ("account-id", "42")])).unwrap();
        assert_eq!((us.nerdgraph_url.as_str(), us.account_id), ("https://api.newrelic.com/graphql", 42));
        let eu = account_of(&secret(&[("personal-api-key", "k"), ("account-id", "42"), ("region", "eu")])).unwrap();
        assert_eq!(eu.nerdgraph_url, "https://api.eu.newrelic.com/graphql");
        let custom = account_of(&secret(&[
            ("personal-api-key", "k"),
            ("account-id", "42"),
            ("region", "eu"),
            ("base-url-nerdgraph", "https://nerdgraph.example/graphql"),
        ]))
        .unwrap();
        assert_eq!(custom.nerdgraph_url, "https://nerdgraph.example/graphql");
    }

    #[test]
    fn a_profile_without_both_keys_a_bad_account_or_region_and_a_negative_timeout_are_errors() {
        let err = |pairs: &[(&str, &str)]| account_of(&secret(pairs)).err().unwrap();
        assert_eq!(err(&[("personal-api-key", "k")]), "account ID or personal API key not found");
        assert_eq!(err(&[("account-id", "42"), ("personal-api-key", "")]), "account ID or personal API key not found");
        assert_eq!(err(&[("personal-api-key", "k"), ("account-id", "x1")]), r#"could not parse account ID: strconv.Atoi: parsing "x1": invalid syntax"#);
        assert_eq!(err(&[("personal-api-key", "k"), ("account-id", "1"), ("region", "mars")]), "unknown region: mars");
        assert_eq!(nrql_timeout(None), Ok(5));
        assert_eq!(nrql_timeout(Some(0)), Ok(0));
        assert_eq!(nrql_timeout(Some(-1)).unwrap_err(), "timeout value needs to be a positive value");
    }

    #[tokio::test]
    async fn offline_the_profile_secret_cannot_be_read() {
        let context = rollouts_core::analysis::run::MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", std::time::UNIX_EPOCH, &context);
        let metric = NewRelicMetric { profile: Some("nr-prod".to_string()), query: NRQL.to_string(), timeout: None };
        let err = metric.measure(&ctx).await.unwrap_err();
        assert!(err.contains("argo-rollouts/nr-prod"), "{err}");
    }
}
