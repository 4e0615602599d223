//! `rollouts notifications …` through the binary, offline (`--config-map`, `--secret` files).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::capture::Capture;
use super::services::rollout;

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("notifications-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the ConfigMap, the Secret and the rollout; returns their paths.
fn files(tag: &str, data: &str, secret: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir();
    let cm = d.join(format!("{tag}-cm.yaml"));
    std::fs::write(&cm, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argo-rollouts-notification-configmap\ndata:\n{data}")).unwrap();
    let s = d.join(format!("{tag}-secret.yaml"));
    std::fs::write(&s, format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: argo-rollouts-notification-secret\nstringData:\n{secret}")).unwrap();
    let ro = d.join(format!("{tag}-rollout.yaml"));
    std::fs::write(&ro, serde_yaml_ng::to_string(&rollout()).unwrap()).unwrap();
    (cm, s, ro)
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollouts"))
        .arg("notifications")
        .args(args)
        // Offline: no cluster is needed, so an unusable kubeconfig must not matter.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PURPLE: &str = "  trigger.on-yellow: |\n    - when: rollout.spec.template.spec.containers[0].image == 'argoproj/rollouts-demo:yellow'\n      send: [yellow]\n    - when: rollout.spec.replicas > 10\n      send: [yellow]\n  template.yellow: |\n    message: Rollout {{.rollout.metadata.name}} runs yellow\n";

#[test]
fn template_and_trigger_get_list_the_catalog_and_the_configmaps_own() {
    let (cm, _, _) = files("get", PURPLE, "  x: y\n");
    let cm = cm.to_str().unwrap();
    let out = cli(&["--config-map", cm, "--secret", ":empty", "trigger", "get"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("TEMPLATE") && lines[0].contains("CONDITION"), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("on-rollout-aborted") && l.contains("rollout-aborted")), "{text}");
    let yellow = lines.iter().position(|l| l.starts_with("on-yellow")).expect("the ConfigMap's trigger");
    assert!(lines[yellow].contains("yellow") && lines[yellow].ends_with("== 'argoproj/rollouts-demo:yellow'"), "{text}");
    assert!(lines[yellow + 1].trim_start().starts_with("yellow") && lines[yellow + 1].ends_with("rollout.spec.replicas > 10"), "a second condition has no name: {text}");

    let out = cli(&["--config-map", cm, "--secret", ":empty", "template", "get", "yellow"]);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), ["NAME    PREVIEW", "yellow  Rollout {{.rollout.metadata.name}} runs yellow"]);
    let out = cli(&["--config-map", cm, "--secret", ":empty", "template", "get", "-o", "name"]);
    assert_eq!(stdout(&out).lines().count(), 10, "nine catalog templates and the ConfigMap's: {}", stdout(&out));
    let out = cli(&["--config-map", cm, "--secret", ":empty", "trigger", "get", "on-yellow", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["on-yellow"][1]["when"], "rollout.spec.replicas > 10");
}

#[test]
fn trigger_run_evaluates_each_condition_on_a_rollout_file() {
    let (cm, _, ro) = files("run", PURPLE, "  x: y\n");
    let out = cli(&["--config-map", cm.to_str().unwrap(), "--secret", ":empty", "trigger", "run", "on-yellow", ro.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["CONDITION", "RESULT"]);
    assert_eq!(rows[1].last(), Some(&"true"), "{text}");
    assert_eq!(rows[2].last(), Some(&"false"), "{text}");
}

#[tokio::test]
async fn template_notify_sends_through_a_configured_service_or_prints_to_the_console() {
    let server = Capture::start((200, "ok")).await;
    let data = format!("  service.webhook.ci: |\n    url: $ci-url\n{PURPLE}");
    let (cm, secret, ro) = files("notify", &data, &format!("  ci-url: {}/yellow\n", server.url()));
    let (cm, secret, ro) = (cm.to_str().unwrap().to_string(), secret.to_str().unwrap().to_string(), ro.to_str().unwrap().to_string());
    let out = tokio::task::spawn_blocking({
        let (cm, secret, ro) = (cm.clone(), secret.clone(), ro.clone());
        move || cli(&["--config-map", &cm, "--secret", &secret, "template", "notify", "yellow", &ro, "--recipient", "ci:builds"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str(), got[0].body.as_str()), ("GET", "/yellow", "Rollout demo runs yellow"));

    let out = cli(&["--config-map", &cm, "--secret", &secret, "template", "notify", "rollout-step-completed", &ro]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_yaml_ng::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["message"], "Rollout demo step number 2/2 has been completed.");
    assert_eq!(printed["email"]["subject"], printed["message"]);
    assert!(printed["slack"]["attachments"].as_str().unwrap().contains("\"Step completed\""));
}

#[tokio::test]
async fn errors_exit_1_name_what_is_wrong_and_never_show_a_secret() {
    let server = Capture::start((500, "rejected token s3cr3t-t0ken")).await;
    let data = format!("  service.webhook.ci: |\n    url: {}/hook?token=$token\n    retryMax: 1\n    retryWaitMin: 10ms\n{PURPLE}", server.url());
    let (cm, secret, ro) = files("errors", &data, "  token: s3cr3t-t0ken\n");
    let (cm, secret, ro) = (cm.to_str().unwrap().to_string(), secret.to_str().unwrap().to_string(), ro.to_str().unwrap().to_string());
    let out = tokio::task::spawn_blocking({
        let (cm, secret, ro) = (cm.clone(), secret.clone(), ro.clone());
        move || cli(&["--config-map", &cm, "--secret", &secret, "template", "notify", "yellow", &ro, "--recipient", "ci:"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("failed to notify 'ci:'") && err.contains("500") && err.contains("***"), "{err}");
    assert!(!err.contains("s3cr3t-t0ken"), "the secret leaked: {err}");
    assert_eq!(server.requests().len(), 2, "retryMax 1");
    assert!(server.requests()[0].path.ends_with("token=s3cr3t-t0ken"), "the secret reached the server");

    for (args, want) in [
        (vec!["trigger", "run", "on-nope", ro.as_str()], "trigger with name 'on-nope' does not exist (found on-analysis-run-error"),
        (vec!["template", "notify", "nope", ro.as_str()], "template 'nope' is not supported"),
        (vec!["template", "notify", "yellow", ro.as_str(), "--recipient", "slack:x"], "notification service 'slack' is not supported"),
        (vec!["template", "get", "-o", "xml"], "unknown output format \"xml\""),
    ] {
        let mut full = vec!["--config-map", cm.as_str(), "--secret", ":empty"];
        full.extend(args);
        let out = cli(&full);
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        assert!(stderr(&out).contains(want), "{full:?}: {}", stderr(&out));
    }
    let bad = dir().join("bad-cm.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argo-rollouts-notification-configmap}\ndata:\n  trigger.on-x: 'send: [a]'\n").unwrap();
    let out = cli(&["--config-map", bad.to_str().unwrap(), "--secret", ":empty", "trigger", "get"]);
    assert!(stderr(&out).contains("trigger.on-x: not a list of conditions"), "{}", stderr(&out));
    let out = cli(&["--config-map", secret.as_str(), "--secret", ":empty", "trigger", "get"]);
    assert!(stderr(&out).contains("does not have 'ConfigMap/argo-rollouts-notification-configmap'"), "{}", stderr(&out));
}
