//! The typed calls the engine makes, one method per API operation it needs.
//!
//! Non-idempotent calls (create a service, add an allowlist entry, start a restore) are not
//! simply re-sent after an *ambiguous* failure (a 5xx or a connection lost after sending: the
//! server may have acted). Each first checks whether its effect already happened and returns
//! that instead; only if it did not is the request sent again. Refusals where the server
//! certainly did nothing (429, "pending state", connection refused) are retried directly.

use std::collections::HashSet;
use std::future::Future;

use serde::de::DeserializeOwned;

use super::client::{RawResponse, SkysqlClient};
use super::error::SkysqlError;
use super::request::{self, ApiRequest, NEXT_PAGE_HEADER};
use super::retry::RetryClass;
use super::types::{
    AllowListEndpoint, Backup, BackupScheduleResponse, CreateServiceRequest, CredentialsResponse,
    IsIpAllowedResponse, PagedBackupsResponse, PagedRestoresResponse, RestoreRequest,
    RestoreResponse, ServiceResponse, ServiceSizeState, SetStorageRequest,
};

/// Safety net against a server whose pagination never ends.
const MAX_PAGES: u32 = 1000;

impl SkysqlClient {
    /// `POST /provisioning/v1/services`.
    ///
    /// After an ambiguous failure it looks the service up by `body.name` before re-sending:
    /// if one exists (the lost request did create it, or one of that name existed already)
    /// it is returned instead, so a retry never creates a duplicate. A request without a
    /// name is not re-sent after an ambiguous failure. The lookup relies on the listing
    /// showing a service as soon as the create was accepted.
    pub async fn create_service(
        &self,
        body: &CreateServiceRequest,
    ) -> Result<ServiceResponse, SkysqlError> {
        let req = request::create_service(body);
        let name = body.name.as_deref();
        self.execute_checked(&req, move || async move {
            match name {
                Some(name) => Ok(newest(self.find_services_by_name(name).await?)),
                // Nothing to recognise it by: give up rather than risk a duplicate.
                None => Err(SkysqlError::Config(
                    "create_service without a name cannot be retried safely".into(),
                )),
            }
        })
        .await
    }

    /// Every page of `GET /provisioning/v1/{kind}` (the offering catalog), filtered.
    pub async fn list_offering<T: DeserializeOwned>(
        &self,
        kind: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, SkysqlError> {
        self.token_pages(|token| request::list_offering(kind, filters, token))
            .await
    }

    /// `GET /provisioning/v1/services/{id}`; `Ok(None)` when it does not exist (404).
    pub async fn get_service(&self, id: &str) -> Result<Option<ServiceResponse>, SkysqlError> {
        let req = request::get_service(id);
        match self.call(&req).await {
            Ok(s) => Ok(Some(checked_service(&req, s)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All services, following `X-SkySQL-Page-Token-Next` page by page (100 per page).
    pub async fn list_services(&self) -> Result<Vec<ServiceResponse>, SkysqlError> {
        let all: Vec<ServiceResponse> = self.token_pages(request::list_services).await?;
        let req = request::list_services(None);
        all.into_iter().map(|s| checked_service(&req, s)).collect()
    }

    /// Every page of a listing paged by `X-SkySQL-Page-Token-Next`: `page(token)` builds the
    /// request for one page (`None`: the first). A token seen before is an error, never a loop.
    pub(super) async fn token_pages<T: DeserializeOwned>(
        &self,
        page: impl Fn(Option<&str>) -> ApiRequest,
    ) -> Result<Vec<T>, SkysqlError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let req = page(token.as_deref());
            let resp = self.execute(&req, &mut 0).await?;
            let items: Vec<T> = self.decode(&req, &resp, false)?;
            all.extend(items);
            let next = resp
                .headers
                .get(NEXT_PAGE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            match next {
                Some(t) if seen.insert(t.clone()) => token = Some(t),
                Some(_) => return Err(pagination_error(&req, seen.len() as u32 + 1)),
                None => return Ok(all),
            }
        }
        Err(pagination_error(&page(None), MAX_PAGES))
    }

    /// The services named exactly `name` (the API has no name filter: lists them all).
    pub async fn find_services_by_name(
        &self,
        name: &str,
    ) -> Result<Vec<ServiceResponse>, SkysqlError> {
        let mut all = self.list_services().await?;
        all.retain(|s| s.name == name);
        Ok(all)
    }

    /// `DELETE /provisioning/v1/services/{id}`. A service that is already gone (404) counts
    /// as deleted, so a retried delete does not fail. Deletion is asynchronous: wait for
    /// [`Self::get_service`] to answer `None`.
    pub async fn delete_service(&self, id: &str) -> Result<(), SkysqlError> {
        match self.execute(&request::delete_service(id), &mut 0).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /provisioning/v1/services/{id}/size`.
    pub async fn set_size(&self, id: &str, size: &str) -> Result<ServiceSizeState, SkysqlError> {
        self.call(&request::set_size(id, size)).await
    }

    /// `POST /provisioning/v1/services/{id}/nodes` (asynchronous: wait for `ready`).
    pub async fn set_nodes(&self, id: &str, nodes: i64) -> Result<(), SkysqlError> {
        self.execute(&request::set_nodes(id, nodes), &mut 0)
            .await
            .map(|_| ())
    }

    /// `POST /provisioning/v1/services/{id}/start` (asynchronous: `pending_start`, then
    /// `ready`). Sent once: after a lost answer, read the status rather than repeat it.
    pub async fn start_service(&self, id: &str) -> Result<(), SkysqlError> {
        self.execute(&request::start_service(id), &mut 0)
            .await
            .map(|_| ())
    }

    /// `POST /provisioning/v1/services/{id}/stop` (asynchronous: `pending_stop`, then
    /// `stopped`; the data is kept).
    pub async fn stop_service(&self, id: &str) -> Result<(), SkysqlError> {
        self.execute(&request::stop_service(id), &mut 0)
            .await
            .map(|_| ())
    }

    /// `PATCH /provisioning/v1/services/{id}/tags` (answers 204 No Content).
    pub async fn set_tags(
        &self,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), SkysqlError> {
        self.execute(&request::set_tags(id, tags), &mut 0)
            .await
            .map(|_| ())
    }

    /// `PATCH /provisioning/v1/services/{id}/storage`.
    pub async fn set_storage(
        &self,
        id: &str,
        body: &SetStorageRequest,
    ) -> Result<SetStorageRequest, SkysqlError> {
        self.call(&request::set_storage(id, body)).await
    }

    /// `GET …/security/allowlist`.
    pub async fn get_allowlist(&self, id: &str) -> Result<Vec<AllowListEndpoint>, SkysqlError> {
        self.call(&request::get_allowlist(id)).await
    }

    /// `POST …/security/allowlist` with one entry. Ensures the entry is present: when the
    /// answer is ambiguous, or a refusal (e.g. "already exists"), the allowlist is read and
    /// an entry that is already there counts as success. Returns the allowlist.
    pub async fn add_allowlist_entry(
        &self,
        id: &str,
        ip: &str,
    ) -> Result<Vec<AllowListEndpoint>, SkysqlError> {
        let req = request::add_allowlist_entry(id, ip);
        let result = self
            .execute_checked(&req, move || self.allowlist_if(id, ip, true))
            .await;
        match result {
            Err(e) if e.retry_class() == RetryClass::Fatal && is_client_error(&e) => self
                .allowlist_if(id, ip, true)
                .await
                .ok()
                .flatten()
                .ok_or(e),
            other => other,
        }
    }

    /// `DELETE …/security/allowlist` with `{"ip_address": ip}`. An entry that is already
    /// absent counts as removed. Returns the allowlist.
    pub async fn delete_allowlist_entry(
        &self,
        id: &str,
        ip: &str,
    ) -> Result<Vec<AllowListEndpoint>, SkysqlError> {
        match self.call(&request::delete_allowlist_entry(id, ip)).await {
            Err(e) if is_client_error(&e) => self
                .allowlist_if(id, ip, false)
                .await
                .ok()
                .flatten()
                .ok_or(e),
            other => other,
        }
    }

    /// `GET …/security/credentials`. The answer holds the password: never print it.
    pub async fn get_credentials(&self, id: &str) -> Result<CredentialsResponse, SkysqlError> {
        let req = request::get_credentials(id);
        let resp = self.execute(&req, &mut 0).await?;
        self.decode(&req, &resp, true)
    }

    /// `POST …/security/is-ip-allowed`.
    pub async fn is_ip_allowed(&self, id: &str, ip: &str) -> Result<bool, SkysqlError> {
        let answer: IsIpAllowedResponse = self.call(&request::is_ip_allowed(id, ip)).await?;
        Ok(answer.is_allowed)
    }

    /// `POST /skybackup/v1/backups/schedules` for a one-time full backup. The answer's id is
    /// the schedule's: find the backup itself with [`Self::list_backups`].
    pub async fn schedule_backup(
        &self,
        service_id: &str,
    ) -> Result<BackupScheduleResponse, SkysqlError> {
        self.call(&request::schedule_full_backup(service_id)).await
    }

    /// All backups of a service (`GET /skybackup/v1/backups?service_id=…`, every page).
    pub async fn list_backups(&self, service_id: &str) -> Result<Vec<Backup>, SkysqlError> {
        self.paged(
            |page| request::list_backups(service_id, page),
            |p: PagedBackupsResponse| (p.backups, p.pages_count),
        )
        .await
    }

    /// Every backup the key can see (`GET /skybackup/v1/backups`, every page), whichever
    /// service it belongs to.
    pub async fn list_all_backups(&self) -> Result<Vec<Backup>, SkysqlError> {
        self.paged(request::list_all_backups, |p: PagedBackupsResponse| {
            (p.backups, p.pages_count)
        })
        .await
    }

    /// The backup of this id among [`Self::list_all_backups`].
    pub async fn find_backup(&self, id: &str) -> Result<Option<Backup>, SkysqlError> {
        let all = self.list_all_backups().await?;
        Ok(all.into_iter().find(|b| b.id == id))
    }

    /// `POST /skybackup/v1/restores`. This stops the target and wipes its data.
    ///
    /// Costs one extra listing first: the restores already known for the target, so that
    /// after an ambiguous failure a *new* restore of the same backup is recognised as ours
    /// and not started twice. If the listing is not available the restore is still started,
    /// but an ambiguous failure is then returned rather than retried.
    pub async fn start_restore(
        &self,
        body: &RestoreRequest,
    ) -> Result<RestoreResponse, SkysqlError> {
        let before: Option<HashSet<i64>> = match self.list_restores(&body.service_id).await {
            Ok(list) => Some(list.iter().map(|r| r.id).collect()),
            Err(e) if e.retry_class() == RetryClass::Fatal => None,
            Err(e) => return Err(e),
        };
        let req = request::start_restore(body);
        let before = &before;
        self.execute_checked(&req, move || async move {
            let Some(before) = before else {
                return Err(SkysqlError::Config(
                    "restores cannot be listed, so the restore cannot be retried safely".into(),
                ));
            };
            let after = self.list_restores(&body.service_id).await?;
            Ok(after
                .into_iter()
                .find(|r| r.backup_id == body.id && !before.contains(&r.id)))
        })
        .await
    }

    /// All restores of a service (`GET /skybackup/v1/restores?service_id=…`, every page).
    pub async fn list_restores(
        &self,
        service_id: &str,
    ) -> Result<Vec<RestoreResponse>, SkysqlError> {
        self.paged(
            |page| request::list_restores(service_id, page),
            |p: PagedRestoresResponse| (p.restores, p.pages_count),
        )
        .await
    }

    /// `GET /skybackup/v1/restores/{id}`.
    pub async fn get_restore(&self, id: i64) -> Result<RestoreResponse, SkysqlError> {
        self.call(&request::get_restore(id)).await
    }

    /// Send with the request's own retry rules and decode the answer.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        req: &ApiRequest,
    ) -> Result<T, SkysqlError> {
        let resp = self.execute(req, &mut 0).await?;
        self.decode(req, &resp, false)
    }

    /// Send a non-idempotent request. After an ambiguous failure, `already_done` says whether
    /// the effect happened anyway (`Some(result)`); if not, the request is sent again, within
    /// the same attempt budget. If the check itself fails, the original error is returned:
    /// it is the one that explains what went wrong.
    ///
    /// (`already_done` is a closure returning a future rather than an async closure: the
    /// latter makes the caller's future fail `Send` checks under a multi-threaded executor.)
    pub(super) async fn execute_checked<
        T: DeserializeOwned,
        F: Future<Output = Result<Option<T>, SkysqlError>>,
    >(
        &self,
        req: &ApiRequest,
        mut already_done: impl FnMut() -> F,
    ) -> Result<T, SkysqlError> {
        let mut attempts = 0;
        loop {
            let error = match self.execute(req, &mut attempts).await {
                Ok(resp) => return self.decode(req, &resp, false),
                Err(e) if e.retry_class() == RetryClass::Ambiguous => e,
                Err(e) => return Err(e),
            };
            match already_done().await {
                Ok(Some(done)) => {
                    tracing::debug!(path = %req.path, "ambiguous failure, but the call took effect");
                    return Ok(done);
                }
                Ok(None) if self.retry.allows_another(attempts) => {
                    self.pause(attempts, RetryClass::Ambiguous).await
                }
                Ok(None) | Err(_) => return Err(error),
            }
        }
    }

    /// The allowlist, if `ip` is (`present = true`) or is not (`false`) in it.
    async fn allowlist_if(
        &self,
        id: &str,
        ip: &str,
        present: bool,
    ) -> Result<Option<Vec<AllowListEndpoint>>, SkysqlError> {
        let list = self.get_allowlist(id).await?;
        let found = list.iter().any(|endpoint| {
            endpoint
                .allow_list
                .iter()
                .any(|item| same_address(&item.ip, ip))
                || endpoint
                    .allow_list_deprecated
                    .iter()
                    .any(|item| same_address(item, ip))
        });
        Ok((found == present).then_some(list))
    }

    /// Page-numbered listings (backups, restores): pages 1.. until `pages_count` or an empty
    /// page.
    async fn paged<P: DeserializeOwned, T>(
        &self,
        make: impl Fn(u32) -> ApiRequest,
        split: impl Fn(P) -> (Vec<T>, i64),
    ) -> Result<Vec<T>, SkysqlError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let req = make(page);
            let resp: RawResponse = self.execute(&req, &mut 0).await?;
            let (items, pages_count) = split(self.decode(&req, &resp, false)?);
            let empty = items.is_empty();
            all.extend(items);
            if empty || i64::from(page) >= pages_count {
                return Ok(all);
            }
        }
        Err(pagination_error(&make(MAX_PAGES), MAX_PAGES))
    }
}

/// A service as the API described it, refused when its `fqdn` is not a host name (it is
/// stored, printed and connected to: an answer carrying terminal sequences or spaces there is
/// not one skyplan can trust), with control characters escaped in the strings it prints.
fn checked_service(
    req: &ApiRequest,
    mut s: ServiceResponse,
) -> Result<ServiceResponse, SkysqlError> {
    use skyplan_api::text::{escape_controls, is_hostname};
    if !s.fqdn.is_empty() && !is_hostname(&s.fqdn) {
        return Err(SkysqlError::Decode {
            method: req.method.as_str().to_string(),
            path: req.path.clone(),
            message: format!(
                "service {} has fqdn \"{}\", which is not a host name; the answer is refused",
                escape_controls(&s.id),
                escape_controls(&s.fqdn)
            ),
        });
    }
    for field in [
        &mut s.id,
        &mut s.name,
        &mut s.region,
        &mut s.provider,
        &mut s.size,
        &mut s.architecture,
        &mut s.topology,
        &mut s.service_type,
    ] {
        if let std::borrow::Cow::Owned(clean) = escape_controls(field) {
            *field = clean;
        }
    }
    for e in &mut s.errors {
        if let std::borrow::Cow::Owned(clean) = escape_controls(e) {
            *e = clean;
        }
    }
    Ok(s)
}

/// The most recently created of several same-name services.
fn newest(mut services: Vec<ServiceResponse>) -> Option<ServiceResponse> {
    services.sort_by_key(|s| s.created_on.unwrap_or(0));
    services.pop()
}

pub(super) fn is_client_error(e: &SkysqlError) -> bool {
    e.status()
        .is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403 && s != 429)
}

/// `1.2.3.4` and `1.2.3.4/32` are the same entry.
pub(crate) use skyplan_api::cidr::same as same_address;

fn pagination_error(req: &ApiRequest, pages: u32) -> SkysqlError {
    SkysqlError::Pagination {
        method: req.method.as_str().to_string(),
        path: req.path.clone(),
        pages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine runs these futures on tokio's multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(c: &SkysqlClient, create: &CreateServiceRequest, restore: &RestoreRequest) {
        fn is_send<T: Send>(_: T) {}
        is_send(c.create_service(create));
        is_send(c.add_allowlist_entry("id", "ip"));
        is_send(c.start_restore(restore));
        is_send(c.list_services());
        is_send(c.list_backups("id"));
        is_send(c.find_backup("id"));
    }

    #[test]
    fn addresses_compare_as_networks() {
        assert!(same_address("10.0.0.1", "10.0.0.1/32"));
        assert!(same_address(" 10.0.0.0/24", "10.0.0.7/24"));
        assert!(!same_address("10.0.0.1", "10.0.0.2/32"));
        assert!(!same_address("10.0.0.1/24", "10.0.0.1/32"));
        assert!(same_address("not-an-ip", "not-an-ip"));
    }

    #[test]
    fn newest_service_wins() {
        let s = |id: &str, at| ServiceResponse {
            id: id.into(),
            created_on: Some(at),
            ..Default::default()
        };
        assert_eq!(
            newest(vec![s("a", 2), s("b", 5), s("c", 1)]).unwrap().id,
            "b"
        );
        assert!(newest(vec![]).is_none());
    }
}
