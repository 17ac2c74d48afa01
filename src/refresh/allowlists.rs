//! The allowlists of the ready services: from the list's `endpoints[].allow_list` where it
//! carries entries, else one GET each.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::observed::RemoteService;
use crate::remote::Remote;
use crate::skysql::types::ServiceResponse;

pub(super) async fn allowlists(
    remote: &Remote,
    listed: &HashMap<String, ServiceResponse>,
    present: &[(&String, &RemoteService)],
    parallelism: usize,
) -> Result<BTreeMap<String, Vec<String>>> {
    // A listed service carries its allowlist in `endpoints[].allow_list`: use it and save a GET
    // per service. Only services the list did not show, or whose endpoints hold no entry
    // (which the cloud may simply have left out), are read one by one.
    let mut allowlists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut to_read = Vec::new();
    for (key, r) in present.iter().copied() {
        let embedded: Vec<String> = listed
            .get(&r.id)
            .map(|s| {
                s.endpoints
                    .iter()
                    .flat_map(|e| e.allow_list.iter().map(|i| i.ip.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if embedded.is_empty() {
            to_read.push((key, r));
        } else {
            allowlists.insert(key.clone(), embedded);
        }
    }
    let read: Vec<(String, Vec<String>)> = stream::iter(to_read)
        .map(|(key, r)| async move {
            let lists = remote
                .client
                .get_allowlist(&r.id)
                .await
                .with_context(|| format!("reading the allowlist of service.{key}"))?;
            let entries = lists.iter().flat_map(|e| e.entries()).collect();
            Ok::<_, anyhow::Error>((key.clone(), entries))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;
    allowlists.extend(read);

    Ok(allowlists)
}
