//! The watches that feed the index: one per kind, each sending every object
//! it sees, every deletion, and — after each (re)list, as when a watch
//! expired — the set of objects that exist, so that what was deleted while
//! the watch was down is forgotten too.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::index::{ObjectKey, Stream, Watched, WatchedDocument};

/// What a watch tells the index.
#[derive(Debug)]
pub enum Update {
    /// An object was added or changed.
    Applied(Watched),
    /// An object was deleted.
    Deleted(ObjectKey),
    /// A (re)list of `stream` finished: these objects exist.
    Listed {
        /// Which watch.
        stream: Stream,
        /// Every object it listed.
        present: HashSet<ObjectKey>,
    },
}

/// Every stream the index needs before it may render anything.
pub fn streams() -> Vec<Stream> {
    let mut streams = vec![
        Stream::Namespace,
        Stream::Deployment,
        Stream::StatefulSet,
        Stream::DaemonSet,
        Stream::ReplicaSet,
        Stream::Job,
        Stream::CronJob,
        Stream::Pod,
        Stream::Service,
        Stream::EndpointSlice,
        Stream::Ingress,
        Stream::ServiceAccount,
    ];
    streams.extend(WatchedDocument::ALL.iter().map(|k| Stream::Document(*k)));
    streams
}

/// Which namespaces' objects are passed on (all when empty).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    namespaces: Arc<HashSet<String>>,
}

impl Scope {
    /// Objects in `namespaces` only; every namespace when it is empty.
    pub fn new(namespaces: &[String]) -> Self {
        Scope {
            namespaces: Arc::new(namespaces.iter().cloned().collect()),
        }
    }

    fn admits(&self, key: &ObjectKey) -> bool {
        // kube-system stays in view: its DNS server is in every egress policy.
        self.namespaces.is_empty()
            || key.namespace.is_empty()
            || key.namespace == "kube-system"
            || self.namespaces.contains(&key.namespace)
    }
}

/// Starts every watch; they run until `updates` closes.
pub fn spawn_all(client: &kube::Client, scope: &Scope, updates: &mpsc::UnboundedSender<Update>) {
    fn typed<K>(
        client: &kube::Client,
        scope: &Scope,
        updates: &mpsc::UnboundedSender<Update>,
        stream: Stream,
        wrap: fn(K) -> Watched,
    ) where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let api: Api<K> = Api::all(client.clone());
        tokio::spawn(follow(
            api,
            stream,
            scope.clone(),
            updates.clone(),
            move |k| Some(wrap(k)),
        ));
    }
    typed::<Namespace>(client, scope, updates, Stream::Namespace, |o| {
        Watched::Namespace(Box::new(o))
    });
    typed::<Deployment>(client, scope, updates, Stream::Deployment, |o| {
        Watched::Deployment(Box::new(o))
    });
    typed::<StatefulSet>(client, scope, updates, Stream::StatefulSet, |o| {
        Watched::StatefulSet(Box::new(o))
    });
    typed::<DaemonSet>(client, scope, updates, Stream::DaemonSet, |o| {
        Watched::DaemonSet(Box::new(o))
    });
    typed::<ReplicaSet>(client, scope, updates, Stream::ReplicaSet, |o| {
        Watched::ReplicaSet(Box::new(o))
    });
    typed::<Job>(client, scope, updates, Stream::Job, |o| {
        Watched::Job(Box::new(o))
    });
    typed::<CronJob>(client, scope, updates, Stream::CronJob, |o| {
        Watched::CronJob(Box::new(o))
    });
    typed::<Pod>(client, scope, updates, Stream::Pod, |o| {
        Watched::Pod(Box::new(o))
    });
    typed::<Service>(client, scope, updates, Stream::Service, |o| {
        Watched::Service(Box::new(o))
    });
    typed::<EndpointSlice>(client, scope, updates, Stream::EndpointSlice, |o| {
        Watched::EndpointSlice(Box::new(o))
    });
    typed::<Ingress>(client, scope, updates, Stream::Ingress, |o| {
        Watched::Ingress(Box::new(o))
    });
    typed::<ServiceAccount>(client, scope, updates, Stream::ServiceAccount, |o| {
        Watched::ServiceAccount(Box::new(o))
    });
    for kind in WatchedDocument::ALL {
        let kind = *kind;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource());
        tokio::spawn(follow(
            api,
            Stream::Document(kind),
            scope.clone(),
            updates.clone(),
            move |object: DynamicObject| {
                serde_json::to_value(&object)
                    .ok()
                    .map(|value| Watched::Document(kind, Box::new(value)))
            },
        ));
    }
}

/// Follows one watch until `updates` closes.
async fn follow<K, F>(
    api: Api<K>,
    stream: Stream,
    scope: Scope,
    updates: mpsc::UnboundedSender<Update>,
    wrap: F,
) where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    F: Fn(K) -> Option<Watched> + Send,
{
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: HashSet<ObjectKey> = HashSet::new();
    let key_of = |object: &K| ObjectKey {
        stream,
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
    };
    while let Some(event) = events.next().await {
        let update = match event {
            Ok(watcher::Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                let key = key_of(&object);
                if !scope.admits(&key) {
                    continue;
                }
                listing.insert(key);
                wrap(object).map(Update::Applied)
            }
            Ok(watcher::Event::InitDone) => Some(Update::Listed {
                stream,
                present: std::mem::take(&mut listing),
            }),
            Ok(watcher::Event::Apply(object)) => {
                let key = key_of(&object);
                if !scope.admits(&key) {
                    continue;
                }
                wrap(object).map(Update::Applied)
            }
            Ok(watcher::Event::Delete(object)) => {
                let key = key_of(&object);
                if !scope.admits(&key) {
                    continue;
                }
                Some(Update::Deleted(key))
            }
            Err(e) => {
                tracing::warn!(error = %e, ?stream, "watch failed; it starts again with a new list");
                continue;
            }
        };
        if let Some(update) = update
            && updates.send(update).is_err()
        {
            return;
        }
    }
}
