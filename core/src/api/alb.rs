//! The AWS ALB router's configuration (`trafficRouting.alb`), with Argo's field names.

use serde::{Deserialize, Serialize};

/// The annotation prefix the AWS Load Balancer Controller reads by default.
pub const ALB_DEFAULT_ANNOTATION_PREFIX: &str = "alb.ingress.kubernetes.io";

/// The Ingress annotation in which Argo records, per rollout, the ALB annotation keys it
/// manages (a JSON object: rollout name → list of keys).
pub const MANAGED_ALB_ANNOTATIONS: &str = "rollouts.argoproj.io/managed-alb-annotations";

/// The longest target-group stickiness AWS accepts (7 days), in seconds.
pub const ALB_MAX_STICKINESS_SECONDS: i64 = 604_800;

/// `trafficRouting.alb`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlbTrafficRouting {
    /// The Ingress (in the Rollout's namespace) whose rules send the root Service's
    /// traffic to the ALB action.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ingress: String,
    /// Several such Ingresses (instead of `ingress`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingresses: Vec<String>,
    /// The Services' port the target groups forward to (required).
    pub service_port: i32,
    /// The Service named in the Ingress rule the action is attached to (default: the
    /// stable Service; required with `pingPong`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_service: String,
    /// The annotation prefix of the ALB controller (default `alb.ingress.kubernetes.io`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub annotation_prefix: String,
    /// Duration-based stickiness of the target groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness_config: Option<StickinessConfig>,
}

/// `alb.stickinessConfig`: AWS's `TargetGroupStickinessConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StickinessConfig {
    /// Whether a client sticks to the target group it was sent to.
    #[serde(default)]
    pub enabled: bool,
    /// For how long, 1..=604800 seconds.
    #[serde(default)]
    pub duration_seconds: i64,
}

impl AlbTrafficRouting {
    /// The annotation prefix, defaulted.
    pub fn prefix(&self) -> &str {
        if self.annotation_prefix.is_empty() {
            ALB_DEFAULT_ANNOTATION_PREFIX
        } else {
            &self.annotation_prefix
        }
    }

    /// The Ingresses, in the order configured (`ingresses`, else `ingress`).
    pub fn ingress_names(&self) -> Vec<&str> {
        if self.ingresses.is_empty() {
            vec![self.ingress.as_str()]
        } else {
            self.ingresses.iter().map(String::as_str).collect()
        }
    }

    /// The Service whose Ingress rule carries the weighted action: `rootService`, else
    /// `stable_service`.
    pub fn action_service<'a>(&'a self, stable_service: &'a str) -> &'a str {
        if self.root_service.is_empty() {
            stable_service
        } else {
            &self.root_service
        }
    }

    /// `<prefix>/actions.<name>`.
    pub fn action_key(&self, name: &str) -> String {
        format!("{}/actions.{name}", self.prefix())
    }

    /// `<prefix>/conditions.<name>`.
    pub fn condition_key(&self, name: &str) -> String {
        format!("{}/conditions.{name}", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_decodes_strictly_with_argo_s_defaults() {
        let cfg: AlbTrafficRouting = serde_json::from_value(serde_json::json!({"ingress": "web", "servicePort": 80})).unwrap();
        assert_eq!(cfg.prefix(), "alb.ingress.kubernetes.io");
        assert_eq!(cfg.ingress_names(), vec!["web"]);
        assert_eq!(cfg.action_service("stable"), "stable");
        assert_eq!(cfg.action_key("stable"), "alb.ingress.kubernetes.io/actions.stable");
        let missing = serde_json::from_value::<AlbTrafficRouting>(serde_json::json!({"ingress": "web"})).unwrap_err();
        assert!(missing.to_string().contains("servicePort"), "{missing}");
        let unknown = serde_json::from_value::<AlbTrafficRouting>(serde_json::json!({"servicePort": 80, "ingres": "web"}));
        assert!(unknown.is_err());
        let custom: AlbTrafficRouting = serde_json::from_value(serde_json::json!({
            "ingresses": ["a", "b"], "servicePort": 443, "rootService": "root", "annotationPrefix": "custom.io",
            "stickinessConfig": {"enabled": true, "durationSeconds": 300}})).unwrap();
        assert_eq!(custom.ingress_names(), vec!["a", "b"]);
        assert_eq!(custom.action_service("stable"), "root");
        assert_eq!(custom.condition_key("r"), "custom.io/conditions.r");
    }
}
