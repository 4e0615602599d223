//! Following a rollout or an experiment and what it owns with kube-rs watchers, for
//! `get rollout --watch`, `get experiment --watch` and `status --watch`. The caller gets a
//! fresh [`Tree`] after changes (at most every 200 ms, as Argo's plugin) and once a second
//! (ages move on), until it says stop.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{select_all, Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};

use super::cluster::{list_if_served, to_value, Cluster, Root, Tree};
use super::error::CliError;
use super::info::Objects;

/// The least time between two updates handed to the caller.
const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(200);
/// Updates are handed over at least this often.
const TICK: Duration = Duration::from_secs(1);

/// What the caller wants after an update.
pub enum Next {
    Continue,
    Stop,
}

/// Objects of one kind, by name, kept in step with a watch.
struct Cache<K> {
    items: BTreeMap<String, K>,
    /// Filled during a re-list, swapped in when it is complete.
    relist: Option<BTreeMap<String, K>>,
}

impl<K: Resource> Cache<K> {
    fn new(items: impl IntoIterator<Item = K>) -> Self {
        Cache { items: items.into_iter().map(|k| (k.name_any(), k)).collect(), relist: None }
    }

    fn apply(&mut self, event: Event<K>) {
        match event {
            Event::Apply(k) => {
                self.items.insert(k.name_any(), k);
            }
            Event::Delete(k) => {
                self.items.remove(&k.name_any());
            }
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(k) => {
                self.relist.get_or_insert_with(BTreeMap::new).insert(k.name_any(), k);
            }
            Event::InitDone => {
                if let Some(items) = self.relist.take() {
                    self.items = items;
                }
            }
        }
    }
}

enum Change {
    Root(Event<DynamicObject>),
    ReplicaSet(Event<ReplicaSet>),
    Pod(Event<Pod>),
    AnalysisRun(Event<DynamicObject>),
    Experiment(Event<DynamicObject>),
}

type Changes = Pin<Box<dyn Stream<Item = Result<Change, watcher::Error>> + Send>>;

fn follow<K>(api: Api<K>, config: watcher::Config, wrap: fn(Event<K>) -> Change) -> Changes
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, config).default_backoff().map(move |r| r.map(wrap)).boxed()
}

fn follow_dynamic(api: Api<DynamicObject>, config: watcher::Config, wrap: fn(Event<DynamicObject>) -> Change) -> Changes {
    watcher(api, config).default_backoff().map(move |r| r.map(wrap)).boxed()
}

/// [`watch_tree`] of the Rollout `name`.
pub async fn watch_rollout<F>(cluster: &Cluster, name: &str, deadline: Option<Instant>, mut update: F) -> Result<(), CliError>
where
    F: FnMut(&Objects) -> Next,
{
    watch_tree(cluster, Root::Rollout, name, deadline, |tree| update(&tree.into_objects())).await
}

/// Reads the `root` object `name` and what it owns, then follows changes, calling `update`
/// with the newest objects until it returns [`Next::Stop`] or `deadline` passes. A missing
/// root fails at once, like the first read of `get`.
pub async fn watch_tree<F>(cluster: &Cluster, root: Root, name: &str, deadline: Option<Instant>, mut update: F) -> Result<(), CliError>
where
    F: FnMut(Tree) -> Next,
{
    let first = cluster.tree(root, name).await?;
    // Kinds whose CRDs are not installed are not watched; an experiment owns no experiments.
    let runs_served = list_if_served(&cluster.analysis_runs()).await?.is_some();
    let experiments_served = match root {
        Root::Rollout => list_if_served(&cluster.experiments()).await?.is_some(),
        Root::Experiment => false,
    };

    let config = watcher::Config::default();
    let mut streams = vec![
        follow_dynamic(cluster.root_api(root), config.clone().fields(&format!("metadata.name={name}")), Change::Root),
        follow(cluster.replica_sets(), config.clone(), Change::ReplicaSet),
        follow(cluster.pods(), config.clone(), Change::Pod),
    ];
    if runs_served {
        streams.push(follow_dynamic(cluster.analysis_runs(), config.clone(), Change::AnalysisRun));
    }
    if experiments_served {
        streams.push(follow_dynamic(cluster.experiments(), config, Change::Experiment));
    }
    let mut changes = select_all(streams);

    let mut root_object = first.root.clone();
    let mut roots: Cache<DynamicObject> = Cache::new(Vec::new());
    let mut replica_sets = Cache::new(first.replica_sets.clone());
    let mut pods = Cache::new(first.pods.clone());
    let mut runs: Cache<DynamicObject> = Cache::new(Vec::new());
    let mut experiments: Cache<DynamicObject> = Cache::new(Vec::new());
    let (mut first_runs, mut first_experiments) = (Some(first.analysis_runs.clone()), Some(first.experiments.clone()));

    if let Next::Stop = update(first) {
        return Ok(());
    }
    let mut ticker = interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_update = Instant::now();
    let mut dirty = false;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    loop {
        let throttle = last_update + MIN_UPDATE_INTERVAL;
        tokio::select! {
            change = changes.next() => {
                match change {
                    Some(Ok(change)) => {
                        match change {
                            Change::Root(e) => roots.apply(e),
                            Change::ReplicaSet(e) => replica_sets.apply(e),
                            Change::Pod(e) => pods.apply(e),
                            Change::AnalysisRun(e) => { first_runs = None; runs.apply(e) }
                            Change::Experiment(e) => { first_experiments = None; experiments.apply(e) }
                        }
                        dirty = true;
                    }
                    // The watcher backs off and re-lists by itself; keep showing what we have.
                    Some(Err(_)) => {}
                    None => return Ok(()),
                }
                if !dirty || Instant::now() < throttle {
                    continue;
                }
            }
            _ = sleep_until(throttle), if dirty => {}
            _ = ticker.tick() => {}
            _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => return Ok(()),
        }
        if let Some(object) = roots.items.get(name) {
            root_object = to_value(object);
        }
        let values = |c: &Cache<DynamicObject>| -> Vec<Value> { c.items.values().map(to_value).collect() };
        let tree = Tree {
            root: root_object.clone(),
            replica_sets: replica_sets.items.values().cloned().collect(),
            pods: pods.items.values().cloned().collect(),
            analysis_runs: first_runs.clone().unwrap_or_else(|| values(&runs)),
            experiments: first_experiments.clone().unwrap_or_else(|| values(&experiments)),
        };
        dirty = false;
        last_update = Instant::now();
        if let Next::Stop = update(tree) {
            return Ok(());
        }
    }
}
