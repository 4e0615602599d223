//! The watching verbs as a person sees them: `get rollout --watch` and `status --watch` typed
//! into a shell in a real terminal (tmux, 120×40), against the local control plane, the
//! screen read back with `capture-pane`. Ages, pod-template hashes and pod suffixes change
//! from run to run; they are replaced by placeholders and runs of blanks collapsed before the
//! screen is compared with the expected tree (the column layout is checked on its own).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use support::{field, healthy, observed, phase, rollout_until, step, within_timeout, Env};

const SEED_CANARY: &str = include_str!("../../fixtures/rollouts/seed-basic-canary.yaml");
const NAME: &str = "rollouts-demo";
const MINUTE: Duration = Duration::from_secs(60);
const WIDTH: usize = 120;

/// One tmux session running an interactive shell, on a tmux server of its own (its own
/// socket file: nothing of the user's tmux is touched). The server is killed and its socket
/// removed when dropped, so a failed assertion leaves no session or watching process behind.
struct Terminal {
    socket: PathBuf,
    session: String,
}

impl Terminal {
    /// A 120×40 shell with the plane's KUBECONFIG and the `rollouts` under test first on PATH,
    /// showing its prompt (so what is typed next is read by the shell, not echoed before it).
    async fn open(env: &Env, name: &str) -> Terminal {
        let session = format!("{name}-{}", std::process::id());
        let terminal = Terminal { socket: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tmux-{session}")), session };
        let bin = Path::new(env!("CARGO_BIN_EXE_rollouts")).parent().unwrap().display().to_string();
        let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
        let kubeconfig = format!("KUBECONFIG={}", env.kubeconfig.display());
        let size = WIDTH.to_string();
        let args = [
            "new-session", "-d", "-s", &terminal.session, "-x", &size, "-y", "40",
            "-e", &kubeconfig, "-e", "PS1=$ ", "-e", "LANG=C.UTF-8",
            // tmux gives a new session the PATH of its client: set it in the shell's own environment.
            "env", &format!("PATH={path}"), "bash", "--norc", "--noprofile",
        ];
        terminal.tmux_ok(&args);
        terminal.until("the shell's prompt", MINUTE, |s| s == "$").await;
        terminal
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-S").arg(&self.socket).args(args).stdin(Stdio::null()).output().expect("run tmux")
    }

    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(out.status.success(), "tmux {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        self.tmux_ok(&["send-keys", "-t", &self.session, "-l", line]);
        self.tmux_ok(&["send-keys", "-t", &self.session, "Enter"]);
    }

    /// What the terminal shows, without the blank lines below the last written one.
    fn screen(&self) -> String {
        let text = self.tmux_ok(&["capture-pane", "-p", "-t", &self.session]);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        let end = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
        lines[..end].join("\n")
    }

    /// The screen with its colours, as tmux writes them (SGR escapes).
    fn coloured_screen(&self) -> String {
        self.tmux_ok(&["capture-pane", "-p", "-e", "-t", &self.session])
    }

    /// Polls the screen every 200 ms until `ok` holds for it; fails with the last screen.
    async fn until(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        self.until_or(what, timeout, ok, |_| String::new()).await
    }

    /// [`Terminal::until`], the failure also saying what `explain` makes of the last screen.
    async fn until_or(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool, explain: impl Fn(&str) -> String) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the terminal did not show {what} within {timeout:?}; it shows:\n{screen}\n{}", explain(&screen));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The shell and the command it runs get SIGHUP.
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The seed canary on blue, then set to yellow: paused at step 1 (`setWeight: 20`, `pause: {}`).
async fn paused_canary(env: &Env) -> Value {
    env.apply(SEED_CANARY).await;
    rollout_until(env, NAME, "the first deploy to be Healthy", MINUTE, healthy).await;
    env.cli_ok(&["set", "image", NAME, "rollouts-demo=argoproj/rollouts-demo:yellow"]);
    rollout_until(env, NAME, "the canary to pause at step 1", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await
}

/// The screen with the run's own values replaced: the namespace, the stable and canary
/// pod-template hashes, pod name suffixes, ages; runs of blanks become two.
fn normalise(screen: &str, namespace: &str, hashes: &[(&str, &str)]) -> String {
    let mut text = screen.replace(namespace, "{ns}");
    for (hash, role) in hashes {
        text = text.replace(&format!("-{hash}"), &format!("-{{{role}}}"));
    }
    let pod = Regex::new(r"(\{(?:stable|canary)\})-[a-z0-9]{5}\b").unwrap();
    let text = pod.replace_all(&text, "$1-{pod}");
    let age = Regex::new(r"(?m)  (\d+[smhd])+( |$)").unwrap();
    let text = age.replace_all(&text, "  {age}$2");
    let blanks = Regex::new(r" {2,}").unwrap();
    text.lines().map(|l| blanks.replace_all(l, "  ").into_owned()).collect::<Vec<_>>().join("\n")
}

fn expected_and_normalised(expected: &str, normalised: &str) -> String {
    format!("normalised:\n{normalised}\nexpected:\n{expected}")
}

/// The tree's columns line up: KIND, STATUS and AGE start in the same terminal column on
/// every row of the table (each of these icons is one cell wide in the terminal).
fn assert_columns_aligned(screen: &str) {
    let lines: Vec<&str> = screen.lines().skip_while(|l| !l.starts_with("NAME ")).collect();
    let header = lines.first().unwrap_or_else(|| panic!("no tree in:\n{screen}"));
    let column = |l: &str, word: &str| l.find(word).map(|i| l[..i].chars().count());
    let kind = column(header, "KIND").unwrap();
    let status = column(header, "STATUS").unwrap();
    for row in lines.iter().skip(1).filter(|l| !l.contains("# revision:")) {
        let at = |i: usize| row.chars().nth(i).unwrap_or(' ');
        assert!(at(kind) != ' ' && at(kind - 1) == ' ' && at(kind - 2) == ' ', "KIND misaligned in {row:?}:\n{screen}");
        assert!(at(status) != ' ' && at(status - 1) == ' ', "STATUS misaligned in {row:?}:\n{screen}");
    }
}

/// `get rollout NAME --watch` in the terminal draws Argo's header and tree of the paused
/// canary, and redraws it when the rollout moves: after a `promote` from another shell the
/// same screen walks through the steps to the healthy tree of the new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rollout_watch_redraws_the_tree_in_a_terminal() {
    within_timeout("get --watch in a terminal", async {
        let env = Env::new("term-get").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        let ro = paused_canary(&env).await;
        let (stable, canary) = (field(&ro, "/status/stableRS"), field(&ro, "/status/currentPodHash"));
        let hashes = [(stable.as_str(), "stable"), (canary.as_str(), "canary")];
        let terminal = Terminal::open(&env, "term-get").await;
        terminal.type_line(&format!("rollouts get rollout {NAME} -n {} --watch", env.namespace));

        let paused = "\
Name:  rollouts-demo
Namespace:  {ns}
Status:  ॥ Paused
Message:  CanaryPauseStep
Strategy:  Canary
  Step:  1/8
  SetWeight:  20
  ActualWeight:  20
Images:  argoproj/rollouts-demo:blue (stable)
  argoproj/rollouts-demo:yellow (canary)
Replicas:
  Desired:  5
  Current:  5
  Updated:  1
  Ready:  5
  Available:  5

NAME  KIND  STATUS  AGE  INFO
⟳ rollouts-demo  Rollout  ॥ Paused  {age}
├──# revision:2
│  └──⧉ rollouts-demo-{canary}  ReplicaSet  ✔ Healthy  {age}  canary
│  └──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
└──# revision:1
  └──⧉ rollouts-demo-{stable}  ReplicaSet  ✔ Healthy  {age}  stable
  ├──□ rollouts-demo-{stable}-{pod}  Pod  ✔ Running  {age}  ready:1/1
  ├──□ rollouts-demo-{stable}-{pod}  Pod  ✔ Running  {age}  ready:1/1
  ├──□ rollouts-demo-{stable}-{pod}  Pod  ✔ Running  {age}  ready:1/1
  └──□ rollouts-demo-{stable}-{pod}  Pod  ✔ Running  {age}  ready:1/1";
        let screen = terminal.until_or("the paused canary's tree", MINUTE, |s| normalise(s, &env.namespace, &hashes) == paused, |s| expected_and_normalised(paused, &normalise(s, &env.namespace, &hashes))).await;
        assert_columns_aligned(&screen);
        assert!(screen.starts_with("Name:            rollouts-demo\n"), "the header's labels are 17 columns wide:\n{screen}");
        // On a terminal the icons and roles are coloured as Argo colours them.
        let coloured = terminal.coloured_screen();
        for (what, painted) in [("a green ✔", "\x1b[32m✔"), ("a yellow canary", "\x1b[33mcanary"), ("a green stable", "\x1b[32mstable")] {
            assert!(coloured.contains(painted), "{what} in {coloured:?}");
        }

        env.cli_ok(&["promote", NAME]);
        terminal.until("the promote moving the canary on", MINUTE, |s| s.contains("  SetWeight:     40") || s.contains("  SetWeight:     60")).await;
        let healthy_tree = "\
Name:  rollouts-demo
Namespace:  {ns}
Status:  ✔ Healthy
Strategy:  Canary
  Step:  8/8
  SetWeight:  100
  ActualWeight:  100
Images:  argoproj/rollouts-demo:yellow (stable)
Replicas:
  Desired:  5
  Current:  5
  Updated:  5
  Ready:  5
  Available:  5

NAME  KIND  STATUS  AGE  INFO
⟳ rollouts-demo  Rollout  ✔ Healthy  {age}
├──# revision:2
│  └──⧉ rollouts-demo-{canary}  ReplicaSet  ✔ Healthy  {age}  stable
│  ├──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
│  ├──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
│  ├──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
│  ├──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
│  └──□ rollouts-demo-{canary}-{pod}  Pod  ✔ Running  {age}  ready:1/1
└──# revision:1
  └──⧉ rollouts-demo-{stable}  ReplicaSet  • ScaledDown  {age}";
        let screen = terminal.until_or("the healthy tree of revision 2", 2 * MINUTE, |s| normalise(s, &env.namespace, &hashes) == healthy_tree, |s| expected_and_normalised(healthy_tree, &normalise(s, &env.namespace, &hashes))).await;
        assert_columns_aligned(&screen);
    })
    .await;
}

/// `status NAME --watch --timeout 60s` in the terminal prints the paused canary's status
/// line, one line per change after a `promote` from another shell, and `Healthy` with exit 0;
/// on a rollout that stays paused it gives up at its timeout with Argo's message and exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_in_a_terminal_follows_a_promote_and_times_out_like_argo() {
    within_timeout("status --watch in a terminal", async {
        let env = Env::new("term-status").await;
        let _controller = env.controller(&["--leader-elect=false"]);
        paused_canary(&env).await;
        let terminal = Terminal::open(&env, "term-status").await;
        let command = format!("rollouts status {NAME} -n {} --watch --timeout 60s; echo \"exit=$?\"", env.namespace);
        terminal.type_line(&command);
        let typed = format!("$ {command}");
        terminal.until("the paused status line", MINUTE, |s| s.contains(&format!("{typed}\nPaused - CanaryPauseStep"))).await;

        let promoted_at = Instant::now();
        env.cli_ok(&["promote", NAME]);
        let screen = terminal.until("the watch to end", MINUTE, |s| s.lines().any(|l| l.starts_with("exit="))).await;
        assert!(promoted_at.elapsed() < MINUTE, "ended by the rollout, not by the timeout");
        let printed: Vec<&str> = screen.lines().skip_while(|l| *l != typed).skip(1).take_while(|l| !l.starts_with("exit=")).collect();
        assert_eq!(printed.first(), Some(&"Paused - CanaryPauseStep"), "{screen}");
        assert_eq!(printed.last(), Some(&"Healthy"), "{screen}");
        for line in &printed[1..printed.len() - 1] {
            assert!(line.starts_with("Progressing - ") || line.starts_with("Paused - CanaryPauseStep"), "a status line: {line:?} in\n{screen}");
        }
        assert!(printed.windows(2).all(|w| w[0] != w[1]), "a line per change, never the same twice in a row: {printed:?}");
        assert!(screen.lines().any(|l| l == "exit=0"), "{screen}");

        // A rollout that stays paused: the watch gives up at the timeout.
        env.cli_ok(&["set", "image", NAME, "rollouts-demo=argoproj/rollouts-demo:green"]);
        rollout_until(&env, NAME, "the canary to pause at step 1 again", MINUTE, |ro| observed(ro) && phase(ro) == "Paused" && step(ro) == 1).await;
        terminal.type_line("clear");
        terminal.until("a cleared screen", MINUTE, |s| s.trim() == "$").await;
        let command = format!("rollouts status {NAME} -n {} --watch --timeout 3s; echo \"exit=$?\"", env.namespace);
        terminal.type_line(&command);
        let started = Instant::now();
        let screen = terminal.until("the watch to time out", MINUTE, |s| s.lines().any(|l| l.starts_with("exit="))).await;
        assert!(started.elapsed() >= Duration::from_secs(3), "not before the timeout");
        assert_eq!(
            screen,
            format!("$ {command}\nPaused - CanaryPauseStep\nerror: Rollout status watch exceeded timeout\nexit=1\n$"),
        );
    })
    .await;
}
