//! The dashboard as a person uses it: Debian's headless Chromium, driven over WebDriver, on
//! `rollouts dashboard` against the local control plane with the controller running. The
//! list shows the seed canary; a `set image` made elsewhere shows up on the open pages without
//! a reload; Promote (its confirmation accepted) advances the paused canary; the what-if
//! form draws its timeline chart; screenshots go to `target/screenshots/`.

mod support;
#[path = "dashboard/client.rs"]
#[allow(dead_code)] // the browser needs its start and `own` only
mod client;
#[path = "browser/driver.rs"]
mod driver;

use std::time::Duration;

use client::Dashboard;
use driver::Browser;
use serde_json::Value;
use support::{field, healthy, observed, phase, rollout_until, step, within_timeout, Env};

const SEED_CANARY: &str = include_str!("../../fixtures/rollouts/seed-basic-canary.yaml");
const MINUTE: Duration = Duration::from_secs(60);
const NAME: &str = "rollouts-demo";
/// Set on `window` by the test: still there later means the page was not reloaded.
const MARK: &str = "window.rolloutsTestMark = 'not reloaded'; return true;";
const READ_MARK: &str = "return window.rolloutsTestMark || null;";

async fn assert_not_reloaded(browser: &Browser, page: &str) {
    assert_eq!(browser.run(READ_MARK).await, Value::from("not reloaded"), "the {page} was reloaded instead of updated in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_watches_and_steers_the_seed_canary_in_chromium() {
    within_timeout("the browser test", async {
        let env = Env::new("browser").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        env.apply(SEED_CANARY).await;
        rollout_until(&env, NAME, "the first deploy to be Healthy", MINUTE, healthy).await;
        let dash = Dashboard::start(&env, &[]).await;
        let base = format!("http://127.0.0.1:{}/rollouts", dash.port);
        let browser = Browser::start().await;
        let ns = &env.namespace;

        // The list: the seed canary as a card, Healthy, its namespace selected.
        browser.goto(&format!("{base}/")).await;
        let card = format!("a.card[data-rollout=\"{NAME}\"]");
        let text = browser.text_until(&card, "the seed canary's card", MINUTE, |t| t.contains("Healthy")).await;
        assert!(text.contains("argoproj/rollouts-demo:blue") && text.contains("5/5"), "{text}");
        assert_eq!(browser.text("#count-Healthy").await.as_deref(), Some("1"));
        let selected = browser.run("return document.querySelector('select[name=namespace]').value;").await;
        assert_eq!(selected, Value::from(ns.as_str()), "the namespace selector shows the dashboard's namespace");
        browser.screenshot("list-grid").await;

        // The table view and the filters, kept in the URL, without a reload.
        browser.run(MARK).await;
        browser.click("input[name=view][value=table]").await;
        browser.text_until(&format!("table.rollouts tr[data-rollout=\"{NAME}\"]"), "the table view", MINUTE, |t| t.contains("Healthy")).await;
        browser.click("input[name=attention]").await;
        browser.text_until("#rollouts", "the needs-attention filter to hide the healthy canary", MINUTE, |t| t.contains("No rollout matches")).await;
        let url = driver::step("read the URL", browser.client.current_url()).await;
        assert!(url.query().is_some_and(|q| q.contains("view=table") && q.contains("attention=1")), "{url}");
        browser.click("input[name=attention]").await;
        browser.text_until("#rollouts", "the canary back in the table", MINUTE, |t| t.contains(NAME)).await;
        let search = driver::step("find the filter box", browser.client.find(fantoccini::Locator::Css("input[name=q]"))).await;
        driver::step("type a filter", search.send_keys("no-such-rollout")).await;
        browser.text_until("#rollouts", "the name filter to hide the canary", MINUTE, |t| t.contains("No rollout matches")).await;
        driver::step("clear the filter", search.clear()).await;
        driver::step("type a filter", search.send_keys("demo")).await;
        browser.text_until("#rollouts", "the name filter to show the canary", MINUTE, |t| t.contains(NAME)).await;
        let url = driver::step("read the URL", browser.client.current_url()).await;
        assert!(url.query().is_some_and(|q| q.contains("q=demo")), "{url}");
        assert_not_reloaded(&browser, "list").await;

        // A set image from the CLI: the open list shows the new image and the canary's progress live.
        env.cli_ok(&["set", "image", NAME, &format!("{NAME}=argoproj/rollouts-demo:yellow")]);
        let row = format!("table.rollouts tr[data-rollout=\"{NAME}\"]");
        browser.text_until(&row, "the list to show the new image live", MINUTE, |t| t.contains("argoproj/rollouts-demo:yellow")).await;
        rollout_until(&env, NAME, "the canary to pause at step 1", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await;
        browser.text_until(&row, "the list to show the pause live", MINUTE, |t| t.contains("Paused")).await;
        assert_not_reloaded(&browser, "list").await;
        browser.screenshot("list-table").await;

        // The rollout page: a set image made elsewhere shows up without a reload.
        browser.click(&format!("{row} a")).await;
        browser.text_until("#steps li.current", "the rollout page with step 1 current", MINUTE, |t| t.contains("Pause")).await;
        assert_eq!(browser.text("#image-c-rollouts-demo").await.as_deref(), Some("argoproj/rollouts-demo:yellow"));
        browser.run(MARK).await;
        let set = dash.own("PUT", &format!("/rollouts/api/v1/rollouts/{ns}/{NAME}/set/{NAME}/argoproj/rollouts-demo/green"), "{}").await;
        assert_eq!(set.status, 200, "{set:?}");
        browser.text_until("#image-c-rollouts-demo", "the new image on the open rollout page", MINUTE, |t| t == "argoproj/rollouts-demo:green").await;
        assert_not_reloaded(&browser, "rollout page").await;
        rollout_until(&env, NAME, "the green canary to pause at step 1", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && field(ro, "/spec/template/spec/containers/0/image").ends_with(":green")
        })
        .await;
        browser.text_until("#summary", "the summary to show the pause", MINUTE, |t| t.contains("Paused") && t.contains("1/8")).await;
        browser.text_until("#revisions", "the green ReplicaSet under the revisions", MINUTE, |t| t.contains("argoproj/rollouts-demo:green")).await;
        browser.screenshot("rollout").await;

        // The image editor: "Update" sends the set image; the page shows it.
        let input = driver::step("find the image input", browser.client.find(fantoccini::Locator::Css("#new-image-c-rollouts-demo"))).await;
        driver::step("type an image", input.send_keys("argoproj/rollouts-demo:orange")).await;
        browser.click("button[data-set-image]").await;
        rollout_until(&env, NAME, "the Update button to set the image", MINUTE, |ro| {
            field(ro, "/spec/template/spec/containers/0/image") == "argoproj/rollouts-demo:orange"
        })
        .await;
        browser.text_until("#image-c-rollouts-demo", "the orange image on the page", MINUTE, |t| t == "argoproj/rollouts-demo:orange").await;
        rollout_until(&env, NAME, "the orange canary to pause at step 1", MINUTE, |ro| {
            observed(ro) && phase(ro) == "Paused" && step(ro) == 1 && field(ro, "/spec/template/spec/containers/0/image").ends_with(":orange")
        })
        .await;
        browser.text_until("#steps li.current", "step 1 current again", MINUTE, |t| t.contains("until promoted")).await;

        // Promote: a confirmation first; accepted, the canary moves past the pause.
        browser.click("button[data-body='{\"full\":false}']").await;
        let question = driver::step("read the confirmation", browser.client.get_alert_text()).await;
        assert!(question.contains("Promote"), "{question}");
        driver::step("accept the confirmation", browser.client.accept_alert()).await;
        rollout_until(&env, NAME, "the promote to take the canary past step 1", MINUTE, |ro| step(ro) >= 2).await;
        browser.text_until("#steps li.current", "the page to mark a later step", MINUTE, |t| !t.contains("until promoted")).await;
        assert_not_reloaded(&browser, "rollout page").await;

        // What-if: the rollout page's form simulates the next image with a promote; the
        // timeline chart is drawn (an SVG with its series, of a real size on the page).
        browser.goto(&format!("{base}/rollout/{ns}/{NAME}")).await;
        let image = driver::step("find the what-if image", browser.client.wait().at_most(driver::STEP_WAIT).for_element(fantoccini::Locator::Css("section.whatif input[name=image]"))).await;
        driver::step("type the what-if image", image.send_keys("argoproj/rollouts-demo:purple")).await;
        let promote = driver::step("find the what-if promote", browser.client.find(fantoccini::Locator::Css("section.whatif input[name=promote]"))).await;
        driver::step("type the what-if promote", promote.send_keys("2m")).await;
        browser.click("section.whatif button[type=submit]").await;
        browser.text_until("table.whatif-steps", "the simulated step table", MINUTE, |t| t.contains("Paused")).await;
        let drawn = browser
            .run("var s = document.querySelector('.chart.timeline svg'); if (!s) return null; var r = s.getBoundingClientRect(); \
                  return {width: r.width, height: r.height, lines: s.querySelectorAll('polyline').length};")
            .await;
        assert!(drawn["width"].as_f64().unwrap_or(0.0) > 200.0 && drawn["height"].as_f64().unwrap_or(0.0) > 100.0, "the timeline chart is not drawn: {drawn}");
        assert!(drawn["lines"].as_u64().unwrap_or(0) >= 2, "the chart has no series: {drawn}");
        browser.screenshot("whatif").await;

        browser.close().await;
    })
    .await;
}
