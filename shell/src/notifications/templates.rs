//! Templates: a notification's text per service, in Go template syntax with the Sprig
//! functions, rendered with the variables `rollout`, `analysisRuns`, `recipient`,
//! `serviceType`, `secrets`, `context` and `time` (`call .time.Now`, `call .time.Parse s`).
//!
//! As in notifications-engine, the templates a trigger sends are rendered in order into one
//! notification: `message` (and the Teams and e-mail fields) only when the render is not
//! empty, the Slack fields always, the webhook requests by service name.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, Value};
use serde::{Deserialize, Serialize};

use super::sprig;

/// A template as written, and a rendered notification (the same shape, as in the engine).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<TeamsNotification>,
    /// Requests by webhook service name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub webhook: BTreeMap<String, WebhookNotification>,
    /// Other services' fields, kept for `template get`.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A template as written in `template.<name>`.
pub type TemplateSpec = Notification;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailNotification {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackNotification {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    /// JSON array of attachments.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attachments: String,
    /// JSON array of blocks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blocks: String,
    /// Messages with the same key go to one thread.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grouping_key: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_broadcast: bool,
    /// `Post` (default), `PostAndUpdate` or `Update`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery_policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsNotification {
    /// A whole card: sent as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub theme_color: String,
    /// JSON array of `{name, value}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub facts: String,
    /// JSON array of sections.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sections: String,
    /// JSON array of actions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub potential_action: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookNotification {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl Notification {
    /// The first line of the message (or of the notification as JSON), at most 100
    /// characters: `template get`'s preview.
    pub fn preview(&self) -> String {
        let text = if self.message.is_empty() { serde_json::to_string(self).unwrap_or_default() } else { self.message.clone() };
        let line = text.lines().next().unwrap_or_default();
        if line.chars().count() > 100 {
            format!("{}...", line.chars().take(99).collect::<String>())
        } else {
            line.to_string()
        }
    }
}

/// One field's template.
struct Field {
    name: &'static str,
    template: Template,
}

impl Field {
    fn compile(template_name: &str, name: &'static str, source: &str) -> Result<Field, String> {
        let template = Template::new(template_name)
            .funcs(sprig::funcs())
            .parse(source)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Field { name, template })
    }

    fn render(&self, vars: &Value) -> Result<String, String> {
        self.template.execute_to_string(vars).map_err(|e| format!("{}: {e}", self.name))
    }
}

/// A template, compiled.
pub struct CompiledTemplate {
    name: String,
    message: Field,
    email: Option<[Field; 2]>,
    slack: Option<([Field; 5], bool, String)>,
    teams: Option<[Field; 8]>,
    webhook: Vec<(String, String, Field, Field)>,
}

impl CompiledTemplate {
    /// Compiles every field; the error names the field (`slack.attachments: …`).
    pub fn compile(name: &str, spec: &TemplateSpec) -> Result<CompiledTemplate, String> {
        let f = |field: &'static str, src: &str| Field::compile(name, field, src);
        let email = match &spec.email {
            Some(e) => Some([f("email.subject", &e.subject)?, f("email.body", &e.body)?]),
            None => None,
        };
        let slack = match &spec.slack {
            Some(s) => Some((
                [
                    f("slack.username", &s.username)?,
                    f("slack.icon", &s.icon)?,
                    f("slack.attachments", &s.attachments)?,
                    f("slack.blocks", &s.blocks)?,
                    f("slack.groupingKey", &s.grouping_key)?,
                ],
                s.notify_broadcast,
                s.delivery_policy.clone(),
            )),
            None => None,
        };
        let teams = match &spec.teams {
            Some(t) => Some([
                f("teams.template", &t.template)?,
                f("teams.title", &t.title)?,
                f("teams.summary", &t.summary)?,
                f("teams.text", &t.text)?,
                f("teams.themeColor", &t.theme_color)?,
                f("teams.facts", &t.facts)?,
                f("teams.sections", &t.sections)?,
                f("teams.potentialAction", &t.potential_action)?,
            ]),
            None => None,
        };
        let mut webhook = Vec::new();
        for (service, w) in &spec.webhook {
            webhook.push((service.clone(), w.method.clone(), f("webhook.path", &w.path)?, f("webhook.body", &w.body)?));
        }
        Ok(CompiledTemplate { name: name.to_string(), message: f("message", &spec.message)?, email, slack, teams, webhook })
    }

    /// Renders into `n`, with the engine's merge rules.
    pub fn render_into(&self, n: &mut Notification, vars: &Value) -> Result<(), String> {
        let named = |e: String| format!("template {}: {e}", self.name);
        let message = self.message.render(vars).map_err(named)?;
        if !message.is_empty() {
            n.message = message;
        }
        if let Some([subject, body]) = &self.email {
            let email = n.email.get_or_insert_with(Default::default);
            let (s, b) = (subject.render(vars).map_err(named)?, body.render(vars).map_err(named)?);
            if !s.is_empty() {
                email.subject = s;
            }
            if !b.is_empty() {
                email.body = b;
            }
        }
        if let Some(([username, icon, attachments, blocks, grouping], broadcast, policy)) = &self.slack {
            let slack = n.slack.get_or_insert_with(Default::default);
            slack.username = username.render(vars).map_err(named)?;
            slack.icon = icon.render(vars).map_err(named)?;
            slack.attachments = attachments.render(vars).map_err(named)?;
            slack.blocks = blocks.render(vars).map_err(named)?;
            slack.grouping_key = grouping.render(vars).map_err(named)?;
            slack.notify_broadcast = *broadcast;
            slack.delivery_policy = policy.clone();
        }
        if let Some(fields) = &self.teams {
            let teams = n.teams.get_or_insert_with(Default::default);
            let slots: [&mut String; 8] = [
                &mut teams.template,
                &mut teams.title,
                &mut teams.summary,
                &mut teams.text,
                &mut teams.theme_color,
                &mut teams.facts,
                &mut teams.sections,
                &mut teams.potential_action,
            ];
            for (field, slot) in fields.iter().zip(slots) {
                let v = field.render(vars).map_err(named)?;
                if !v.is_empty() {
                    *slot = v;
                }
            }
        }
        for (service, method, path, body) in &self.webhook {
            let request = WebhookNotification {
                method: method.clone(),
                path: path.render(vars).map_err(named)?,
                body: body.render(vars).map_err(named)?,
            };
            n.webhook.insert(service.clone(), request);
        }
        Ok(())
    }
}

/// Renders the named templates, in order, into one notification.
pub fn render(templates: &BTreeMap<String, CompiledTemplate>, names: &[String], vars: &Value) -> Result<Notification, String> {
    let mut n = Notification::default();
    for name in names {
        let t = templates.get(name).ok_or_else(|| format!("template '{name}' is not supported"))?;
        t.render_into(&mut n, vars)?;
    }
    Ok(n)
}

/// The template variables: `vars` (a JSON object) with `time` added.
pub fn variables(vars: &serde_json::Value) -> Value {
    let mut value = sprig::from_json(vars);
    if let Value::Map(m) = &mut value {
        let now: gotmpl::ValueFunc = Arc::new(|_| Ok(Value::String(Arc::from(jiff::Timestamp::now().to_string()))));
        let parse: gotmpl::ValueFunc = Arc::new(|args| {
            let t = args.first().map(sprig::text).unwrap_or_default();
            t.parse::<jiff::Timestamp>()
                .map(|ts| Value::String(Arc::from(ts.to_string())))
                .map_err(|e| gotmpl::TemplateError::Exec(format!("time.Parse: cannot read {t:?}: {e}")))
        });
        let time = BTreeMap::from([(Arc::from("Now"), Value::Function(now)), (Arc::from("Parse"), Value::Function(parse))]);
        Arc::make_mut(m).insert(Arc::from("time"), Value::Map(Arc::new(time)));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::config::{catalog, Config};
    use serde_json::json;

    fn vars() -> Value {
        variables(&json!({
            "rollout": {
                "metadata": {"name": "demo", "namespace": "ns"},
                "spec": {
                    "replicas": 5,
                    "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
                    "template": {"spec": {"containers": [
                        {"name": "app", "image": "argoproj/rollouts-demo:blue"},
                        {"name": "side", "image": "envoy:1"}
                    ]}}
                },
                "status": {"currentStepIndex": 1, "updatedReplicas": 2}
            },
            "recipient": "ops",
            "serviceType": "slack"
        }))
    }

    fn compile(yaml: &str) -> CompiledTemplate {
        CompiledTemplate::compile("t", &serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    fn one(yaml: &str) -> Notification {
        let mut n = Notification::default();
        compile(yaml).render_into(&mut n, &vars()).unwrap();
        n
    }

    #[test]
    fn go_template_syntax_renders_the_rollout() {
        let n = one(
            "message: |\n  {{- range $i, $c := .rollout.spec.template.spec.containers}}{{if $i}}, {{end}}{{$c.name}}={{$c.image}}{{end}}\n  \
             {{- if .rollout.spec.strategy.blueGreen}} BG{{else}} canary{{end}} to {{.recipient}} via {{.serviceType}}\n",
        );
        assert_eq!(n.message, "app=argoproj/rollouts-demo:blue, side=envoy:1 canary to ops via slack\n");
    }

    #[test]
    fn sprig_functions_used_by_notification_templates_work() {
        let cases = [
            ("{{add .rollout.status.currentStepIndex 1}}/{{len .rollout.spec.strategy.canary.steps}}", "2/3"),
            ("{{ .rollout.metadata.name | upper }} {{ \"ABC\" | lower }} {{ title \"hello world\" }}", "DEMO abc Hello World"),
            ("{{ .rollout.missing | default \"none\" }} {{ default \"x\" .rollout.metadata.name }}", "none demo"),
            ("{{ sub 10 3 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 9 3 }} {{ add1 4 }}", "7 24 3 1 9 5"),
            ("{{ trunc 3 \"abcdef\" }} {{ trimPrefix \"ab\" \"abc\" }} {{ replace \"-\" \"_\" \"a-b\" }} {{ repeat 2 \"x\" }}", "abc c a_b xx"),
            ("{{ quote \"a\" }} {{ squote \"b\" }} {{ contains \"em\" \"demo\" }} {{ hasPrefix \"de\" \"demo\" }}", "\"a\" 'b' true true"),
            ("{{ toJson .rollout.status }}", "{\"currentStepIndex\":1,\"updatedReplicas\":2}"),
            ("{{ b64enc \"hi\" }} {{ b64dec \"aGk=\" }} {{ join \",\" (list 1 2) }} {{ splitList \",\" \"a,b\" | last }}", "aGk= hi 1,2 b"),
            ("{{ $d := dict \"k\" \"v\" }}{{ get $d \"k\" }} {{ hasKey $d \"z\" }} {{ ternary \"y\" \"n\" true }} {{ empty \"\" }}", "v false y true"),
            ("{{ coalesce .rollout.nope \"\" \"c\" }} {{ regexReplaceAll \"[0-9]+\" \"a1b22\" \"#\" }} {{ int \"42\" }}", "c a#b# 42"),
            ("{{ date \"2006-01-02 15:04:05 Mon Jan\" \"2024-03-05T07:08:09Z\" }}", "2024-03-05 07:08:09 Tue Mar"),
            ("{{ indent 2 \"a\\nb\" }}|{{ nindent 1 \"c\" }}", "  a\n  b|\n c"),
        ];
        for (src, want) in cases {
            let t = CompiledTemplate::compile("t", &Notification { message: src.to_string(), ..Default::default() }).unwrap();
            let mut n = Notification::default();
            t.render_into(&mut n, &vars()).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(n.message, want, "{src}");
        }
    }

    #[test]
    fn the_catalogs_templates_render_valid_slack_json() {
        let cfg = Config::parse(&catalog(), &BTreeMap::new()).unwrap();
        for name in cfg.templates.keys() {
            let n = render(&cfg.compiled_templates, std::slice::from_ref(name), &vars()).unwrap();
            assert!(n.message.starts_with("Rollout demo") || n.message.starts_with("Scaling Rollout demo"), "{name}: {}", n.message);
            assert_eq!(n.email.as_ref().unwrap().subject, n.message, "{name}");
            let attachments: serde_json::Value = serde_json::from_str(&n.slack.as_ref().unwrap().attachments)
                .unwrap_or_else(|e| panic!("{name}: the Slack attachments are not JSON: {e}"));
            let fields = attachments[0]["fields"].as_array().unwrap();
            assert_eq!(fields[0]["value"], "Canary", "{name}");
            assert_eq!(fields.last().unwrap()["title"], "side", "{name}");
            assert_eq!(fields.last().unwrap()["value"], "envoy:1", "{name}");
        }
        let step = render(&cfg.compiled_templates, &["rollout-step-completed".to_string()], &vars()).unwrap();
        assert_eq!(step.message, "Rollout demo step number 2/3 has been completed.");
        let scaling = render(&cfg.compiled_templates, &["scaling-replicaset".to_string()], &vars()).unwrap();
        assert_eq!(scaling.message, "Scaling Rollout demo's replicaset to 5.");
    }

    #[test]
    fn templates_merge_in_order_as_the_engine_does() {
        let mut n = Notification::default();
        compile("message: first\nslack:\n  username: bot\nteams:\n  title: T1\n").render_into(&mut n, &vars()).unwrap();
        compile("message: ''\nslack:\n  icon: ':x:'\nteams:\n  text: body\nwebhook:\n  ci:\n    method: POST\n    path: /r/{{.rollout.metadata.name}}\n    body: '{\"n\": \"{{.rollout.metadata.name}}\"}'\n")
            .render_into(&mut n, &vars())
            .unwrap();
        assert_eq!(n.message, "first", "an empty render keeps the message");
        let slack = n.slack.unwrap();
        assert_eq!((slack.username.as_str(), slack.icon.as_str()), ("", ":x:"), "Slack fields are replaced");
        let teams = n.teams.unwrap();
        assert_eq!((teams.title.as_str(), teams.text.as_str()), ("T1", "body"), "Teams keeps non-empty fields");
        assert_eq!(n.webhook["ci"], WebhookNotification { method: "POST".into(), path: "/r/demo".into(), body: "{\"n\": \"demo\"}".into() });
    }

    #[test]
    fn errors_name_the_template_and_field() {
        let e = CompiledTemplate::compile("t", &serde_yaml_ng::from_str("slack:\n  attachments: '{{ .a'").unwrap()).err().unwrap();
        assert!(e.starts_with("slack.attachments:"), "{e}");
        let t = compile("email:\n  subject: '{{ fail \"boom\" }}'");
        let e = t.render_into(&mut Notification::default(), &vars()).unwrap_err();
        assert!(e.starts_with("template t: email.subject:") && e.contains("boom"), "{e}");
        let e = render(&BTreeMap::new(), &["missing".to_string()], &vars()).unwrap_err();
        assert_eq!(e, "template 'missing' is not supported");
    }

    #[test]
    fn time_helpers_are_callable() {
        let n = one("message: '{{ call .time.Parse \"2024-01-02T03:04:05Z\" }} {{ if call .time.Now }}now{{end}}'");
        assert_eq!(n.message, "2024-01-02T03:04:05Z now");
    }

    #[test]
    fn a_preview_is_the_first_line_cut_at_100() {
        let n = Notification { message: format!("{}\nsecond", "x".repeat(120)), ..Default::default() };
        assert_eq!(n.preview(), format!("{}...", "x".repeat(99)));
        let m = Notification { slack: Some(SlackNotification { icon: "i".into(), ..Default::default() }), ..Default::default() };
        assert_eq!(m.preview(), r#"{"slack":{"icon":"i"}}"#);
    }
}
