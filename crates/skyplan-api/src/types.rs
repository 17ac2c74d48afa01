//! Wire types of the SkySQL API subset (`skysql-api/skysql-subset.openapi.yaml`).
//!
//! Field names are exactly the spec's. Requests skip absent optional fields so the cloud sees
//! only what was set; responses are tolerant (`#[serde(default)]` everywhere, unknown fields
//! ignored) because the real cloud adds and omits fields freely. The emulator serves these same
//! types, so the client and the emulator cannot drift apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Go services (the cloud) write empty slices and strings as `null`: read `null` as the
/// default, like a missing field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `v1.AllowListItem`: one allowed address or netblock.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllowListItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// An IPv4 address or CIDR netblock, e.g. `"1.2.3.4/32"`.
    #[serde(deserialize_with = "null_as_default")]
    pub ip: String,
}

/// `v1.NamedPort` (create request).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedPort {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub port: u16,
}

/// `v1.CreateServiceEndpointRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateServiceEndpointRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<NamedPort>>,
}

/// `v1.ScaleOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaleOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_compute: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_compute: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_enabled: Option<bool>,
}

/// `v1.CreateServiceRequest` (only the fields a global-replication engine sets, plus the
/// common optional ones; everything is optional on the wire).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateServiceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<Vec<AllowListItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytical: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_ssl: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mechanism: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<CreateServiceEndpointRequest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxscale_nodes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxscale_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nosql_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<NamedPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_options: Option<ScaleOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_iops: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_throughput: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
}

/// `v1.ServiceResponse.status`. Unknown values (the cloud may add some) are kept verbatim in
/// [`ServiceStatus::Other`] rather than failing the whole response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    PendingCreate,
    PendingStart,
    PendingStop,
    PendingScale,
    PendingDelete,
    PendingModifying,
    Ready,
    Failed,
    Stopped,
    Retired,
    #[default]
    Unknown,
    #[serde(untagged)]
    Other(String),
}

impl ServiceStatus {
    /// The wire spelling, e.g. `"pending_create"`.
    pub fn as_str(&self) -> &str {
        match self {
            ServiceStatus::PendingCreate => "pending_create",
            ServiceStatus::PendingStart => "pending_start",
            ServiceStatus::PendingStop => "pending_stop",
            ServiceStatus::PendingScale => "pending_scale",
            ServiceStatus::PendingDelete => "pending_delete",
            ServiceStatus::PendingModifying => "pending_modifying",
            ServiceStatus::Ready => "ready",
            ServiceStatus::Failed => "failed",
            ServiceStatus::Stopped => "stopped",
            ServiceStatus::Retired => "retired",
            ServiceStatus::Unknown => "unknown",
            ServiceStatus::Other(s) => s,
        }
    }

    /// Any `pending_*` status: the cloud refuses mutations until it settles.
    pub fn is_pending(&self) -> bool {
        self.as_str().starts_with("pending_")
    }
}

impl From<&str> for ServiceStatus {
    /// The wire spelling (`"ready"`); unknown values are kept in `Other`.
    fn from(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .unwrap_or_else(|_| ServiceStatus::Other(s.to_string()))
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a backup or a restore job (`v1.Backup.status`, `v1.RestoreResponse.status`).
/// The spec spells "Pending", "Running", "Succeeded", "Failed"; matching is case-insensitive,
/// and the other spellings SkySQL versions have used count for what they mean ("success",
/// "completed", "done"; "error", "cancelled"). Anything else is kept verbatim in `Other` (a
/// missing status is `Other("")`), so an unknown value never fails a whole response. On the
/// wire and in the state it is always the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// skyplan's own, in the state only: the backup schedule exists, the backup not yet.
    Scheduled,
    Other(String),
}

/// `v1.Backup.status`.
pub type BackupStatus = JobStatus;
/// `v1.RestoreResponse.status`.
pub type RestoreStatus = JobStatus;

impl JobStatus {
    pub fn parse(s: &str) -> JobStatus {
        match s.to_ascii_lowercase().as_str() {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "succeeded" | "success" | "completed" | "done" => JobStatus::Succeeded,
            "failed" | "error" | "cancelled" | "canceled" => JobStatus::Failed,
            "scheduled" => JobStatus::Scheduled,
            _ => JobStatus::Other(s.to_string()),
        }
    }

    /// The spec's spelling (`Other` verbatim).
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Running => "Running",
            JobStatus::Succeeded => "Succeeded",
            JobStatus::Failed => "Failed",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Other(s) => s,
        }
    }

    /// Finished, one way or the other: nothing more to wait for.
    pub fn is_final(&self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

impl Default for JobStatus {
    fn default() -> Self {
        JobStatus::Other(String::new())
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for JobStatus {
    fn from(s: &str) -> Self {
        JobStatus::parse(s)
    }
}

impl Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(JobStatus::parse(&String::deserialize(d)?))
    }
}

/// `v1.PurposePort`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PurposePort {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub port: u16,
    #[serde(deserialize_with = "null_as_default")]
    pub purpose: String,
}

/// `v1.ServiceEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceEndpoint {
    #[serde(deserialize_with = "null_as_default")]
    pub allow_list: Vec<AllowListItem>,
    #[serde(deserialize_with = "null_as_default")]
    pub allowed_accounts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub ports: Vec<PurposePort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
}

/// `v1.StorageVolume`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(deserialize_with = "null_as_default")]
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
}

/// `v1.ServiceResponse`: what the provisioning API says about one service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: ServiceStatus,
    #[serde(deserialize_with = "null_as_default")]
    pub service_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub topology: String,
    #[serde(deserialize_with = "null_as_default")]
    pub provider: String,
    #[serde(deserialize_with = "null_as_default")]
    pub region: String,
    #[serde(deserialize_with = "null_as_default")]
    pub architecture: String,
    #[serde(deserialize_with = "null_as_default")]
    pub size: String,
    #[serde(deserialize_with = "null_as_default")]
    pub nodes: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub ssl_enabled: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub fqdn: String,
    #[serde(deserialize_with = "null_as_default")]
    pub endpoints: Vec<ServiceEndpoint>,
    #[serde(deserialize_with = "null_as_default")]
    pub outbound_ips: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub storage_volume: StorageVolume,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxscale_nodes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxscale_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_on: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_on: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub errors: Vec<String>,
    /// The custom configuration (Configuration Manager) attached to the service, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_id: Option<String>,
}

impl ServiceResponse {
    /// The port of the endpoint port named (or with purpose) `readwrite`, if any.
    pub fn readwrite_port(&self) -> Option<u16> {
        self.endpoints
            .iter()
            .flat_map(|e| e.ports.iter())
            .find(|p| p.name == "readwrite" || p.purpose == "readwrite")
            .map(|p| p.port)
    }
}

/// `v1.AllowListEndpoint`: one endpoint's allowlist (GET/PUT/POST/DELETE …/allowlist answer an
/// array of these).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllowListEndpoint {
    /// Deprecated by the cloud (plain strings); still served for old clients.
    #[serde(rename = "allowList")]
    #[serde(deserialize_with = "null_as_default")]
    pub allow_list_deprecated: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub allow_list: Vec<AllowListItem>,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

impl AllowListEndpoint {
    /// The entries, from `allow_list` and from the deprecated `allowList` (a server may fill
    /// either), each once.
    pub fn entries(&self) -> Vec<String> {
        let mut all: Vec<String> = self.allow_list.iter().map(|i| i.ip.clone()).collect();
        for ip in &self.allow_list_deprecated {
            if !all.contains(ip) {
                all.push(ip.clone());
            }
        }
        all
    }
}

/// `v1.AddAllowListIPAddressRequest`: `{"ip_address": "1.2.3.4/32"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AddAllowListIPAddressRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub ip_address: String,
}

/// `v1.DeleteAllowedAddressRequest`: `{"ip_address": "1.2.3.4/32"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteAllowedAddressRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub ip_address: String,
}

/// `v1.CredentialsResponse`. Holds a password: never log or print it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialsResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub host: String,
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(deserialize_with = "null_as_default")]
    pub password: String,
}

impl fmt::Debug for CredentialsResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsResponse")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `v1.IsIpAllowedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IsIpAllowedRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub ip_address: String,
}

/// `v1.IsIpAllowedResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IsIpAllowedResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub ip_address: String,
    #[serde(deserialize_with = "null_as_default")]
    pub is_allowed: bool,
}

/// `v1.ServiceSizeState`: body and answer of `POST …/size`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceSizeState {
    #[serde(deserialize_with = "null_as_default")]
    pub size: String,
}

/// `v1.ServiceNodesState`: body of `POST …/nodes` (full spec; not in the subset).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceNodesState {
    pub nodes: i64,
}

/// `v1.PowerState`: body of the deprecated `POST …/power` (full spec): `is_active` false stops
/// the service, true starts it. skyplan itself calls `…/start` and `…/stop`, which replace it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PowerState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
}

/// `v1.UpdateServiceTagsRequest`: body of `PATCH …/tags` (full spec; not in the subset).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateServiceTagsRequest {
    pub tags: BTreeMap<String, String>,
}

/// `v1.SetStorageRequest`: body and answer of `PATCH …/storage`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SetStorageRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
}

/// `v1.BackupScheduleRequest`: `{"backup_type":"full","schedule":"once","service_id":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupScheduleRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub backup_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub schedule: String,
    #[serde(deserialize_with = "null_as_default")]
    pub service_id: String,
}

/// `v1.BackupScheduleResponse`. Its `id` is the schedule's, not the backup's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupScheduleResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `v1.PagedBackupSchedulesResponse`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PagedBackupSchedulesResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub schedules: Vec<BackupScheduleResponse>,
    #[serde(deserialize_with = "null_as_default")]
    pub schedules_count: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub pages_count: i64,
}

/// `v1.Backup`. `status` is e.g. "Pending", "Running", "Succeeded", "Failed".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Backup {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub service_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub service_name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: BackupStatus,
    #[serde(rename = "type")]
    #[serde(deserialize_with = "null_as_default")]
    pub backup_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binlog_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binlog_gtid_position: Option<String>,
    /// A string on the wire (the spec says so), e.g. `"1234"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binlog_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_external_storage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_full_backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pod: Option<String>,
}

impl Backup {
    pub fn is_succeeded(&self) -> bool {
        self.status == BackupStatus::Succeeded
    }

    pub fn is_failed(&self) -> bool {
        self.status == BackupStatus::Failed
    }
}

/// `v1.PagedBackupsResponse`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PagedBackupsResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub backups: Vec<Backup>,
    #[serde(deserialize_with = "null_as_default")]
    pub backups_count: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub pages_count: i64,
}

/// `v1.RestoreRequest`: `{"id": backup id, "service_id": target}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
}

/// `v1.RestoreResponse`. `id` is the restore operation's (an integer on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub id: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub backup_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub status: RestoreStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub restore_type: Option<String>,
}

/// `v1.PagedRestoresResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PagedRestoresResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub restores: Vec<RestoreResponse>,
    #[serde(deserialize_with = "null_as_default")]
    pub restores_count: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub pages_count: i64,
}

/// `errr.ErrorDetails` (`web.ErrorDetails` is the same minus `type`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetails {
    #[serde(deserialize_with = "null_as_default")]
    pub error: String,
    #[serde(deserialize_with = "null_as_default")]
    pub message: String,
    /// `errr.Type`: "fatal" | "error" | "warning".
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
}

/// `errr.ErrorResponse` / `web.ErrorResponse`: the body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub code: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub errors: Vec<ErrorDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub path: String,
    #[serde(deserialize_with = "null_as_default")]
    pub timestamp: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub trace_id: String,
}

impl ErrorResponse {
    /// All detail messages joined, for error reports.
    pub fn message(&self) -> String {
        self.errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_keeps_unknown_values() {
        let s: ServiceStatus = serde_json::from_str("\"pending_create\"").unwrap();
        assert_eq!(s, ServiceStatus::PendingCreate);
        assert!(s.is_pending());
        let s: ServiceStatus = serde_json::from_str("\"hibernating\"").unwrap();
        assert_eq!(s, ServiceStatus::Other("hibernating".into()));
        assert_eq!(
            serde_json::to_string(&ServiceStatus::Ready).unwrap(),
            "\"ready\""
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hibernating\"");
    }

    #[test]
    fn service_status_from_str_is_the_wire_spelling() {
        assert_eq!(ServiceStatus::from("ready"), ServiceStatus::Ready);
        assert_eq!(
            ServiceStatus::from("pending_delete"),
            ServiceStatus::PendingDelete
        );
        assert_eq!(
            ServiceStatus::from("hibernating"),
            ServiceStatus::Other("hibernating".into())
        );
    }

    #[test]
    fn job_status_has_one_meaning_for_backups_and_restores() {
        for (wire, status) in [
            ("Succeeded", JobStatus::Succeeded),
            ("succeeded", JobStatus::Succeeded),
            ("completed", JobStatus::Succeeded),
            ("Failed", JobStatus::Failed),
            ("cancelled", JobStatus::Failed),
            ("Running", JobStatus::Running),
            ("Pending", JobStatus::Pending),
        ] {
            let parsed: JobStatus = serde_json::from_str(&format!("\"{wire}\"")).unwrap();
            assert_eq!(parsed, status, "{wire}");
        }
        assert!(JobStatus::Succeeded.is_final() && JobStatus::Failed.is_final());
        assert!(!JobStatus::Running.is_final() && !JobStatus::Scheduled.is_final());
        // Unknown values survive a round trip verbatim; the spec's spellings are written back.
        let odd: JobStatus = serde_json::from_str("\"Queued\"").unwrap();
        assert_eq!(odd, JobStatus::Other("Queued".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), "\"Queued\"");
        assert_eq!(
            serde_json::to_string(&JobStatus::Succeeded).unwrap(),
            "\"Succeeded\""
        );
        // A backup without a status (null or absent) is neither done nor failed.
        let b: Backup = serde_json::from_str(r#"{"id":"b1","status":null}"#).unwrap();
        assert!(!b.is_succeeded() && !b.is_failed() && !b.status.is_final());
    }

    #[test]
    fn service_response_tolerates_missing_and_unknown_fields() {
        let json = r#"{"id":"dbpgf00000001","status":"ready","brand_new":1,
            "endpoints":[{"name":"primary","ports":[{"name":"readwrite","port":3306,"purpose":"readwrite"}]}]}"#;
        let s: ServiceResponse = serde_json::from_str(json).unwrap();
        assert_eq!(s.readwrite_port(), Some(3306));
        assert_eq!(s.status, ServiceStatus::Ready);
        assert!(s.outbound_ips.is_empty());
    }

    #[test]
    fn nulls_read_as_defaults() {
        let json = r#"{"id":"dbpgf00000001","status":null,"outbound_ips":null,"errors":null,
            "endpoints":[{"name":"primary","allow_list":null,"ports":null}],"storage_volume":null}"#;
        let s: ServiceResponse = serde_json::from_str(json).unwrap();
        assert_eq!(s.status, ServiceStatus::Unknown);
        assert!(s.outbound_ips.is_empty() && s.endpoints[0].ports.is_empty());
        let b: PagedBackupsResponse = serde_json::from_str(r#"{"backups":null}"#).unwrap();
        assert!(b.backups.is_empty());
    }

    #[test]
    fn requests_skip_absent_fields() {
        let req = CreateServiceRequest {
            name: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&req).unwrap(), r#"{"name":"a"}"#);
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = CredentialsResponse {
            host: "h".into(),
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

#[cfg(test)]
mod allowlist_entries_tests {
    use super::*;

    #[test]
    fn entries_come_from_either_field_once() {
        let e: AllowListEndpoint = serde_json::from_str(
            r#"{"allowList":["1.2.3.4/32","5.6.7.8/32"],"allow_list":[{"ip":"1.2.3.4/32"}],"name":"primary"}"#,
        )
        .unwrap();
        assert_eq!(e.entries(), ["1.2.3.4/32", "5.6.7.8/32"]);
        let only_old: AllowListEndpoint =
            serde_json::from_str(r#"{"allowList":["9.9.9.9/32"],"allow_list":null}"#).unwrap();
        assert_eq!(only_old.entries(), ["9.9.9.9/32"]);
    }
}

/// `v1.Region`: the fields skyplan reads (the rest is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub provider: String,
}

/// `v1.Size`: the fields skyplan reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub architecture: String,
}

/// `v1.Version`: the fields skyplan reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub topology: String,
}

/// `v1.Topology`: the fields skyplan reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyOffer {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub service_type: String,
}

/// `v1.ConfigKeyComponent`: which component a configuration parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigKeyComponent {
    #[default]
    Server,
    #[serde(rename = "maxscale")]
    MaxScale,
}

/// `v1.ConfigKey`: one server variable the Configuration Manager accepts for a topology
/// (`GET /provisioning/v1/topologies/{topology}/configs`). Numbers travel as strings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigKey {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub allowed_values: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub component: ConfigKeyComponent,
    #[serde(deserialize_with = "null_as_default")]
    pub config_section: String,
    #[serde(deserialize_with = "null_as_default")]
    pub default_value: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub documentation_url: String,
    #[serde(deserialize_with = "null_as_default")]
    pub flags: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_value: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub multiselect: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub readonly: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub requires_restart: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// `v1.Config`: a custom configuration (Configuration Manager).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub topology_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub version_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub public: bool,
    /// Ids of the services it is attached to.
    #[serde(deserialize_with = "null_as_default")]
    pub services: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_date: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_date: Option<i64>,
}

/// `v1.CreateConfigRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateConfigRequest {
    pub name: String,
    pub topology_id: String,
    pub version_id: String,
}

/// `v1.UpdateConfigRequest` (`PATCH /provisioning/v1/configs/{id}`: renames it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateConfigRequest {
    pub name: String,
}

/// `v1.ConfigValue`: the value(s) selected for one parameter, by its `ConfigKey::id`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigValue {
    #[serde(deserialize_with = "null_as_default")]
    pub config_key_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub selected_values: Vec<String>,
}

/// `v1.ConfigValueRequest` (`POST …/configs/{id}/values/{variable_name}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigValueRequest {
    pub value: String,
}

/// `v1.ServiceConfigState` (`POST|DELETE /provisioning/v1/services/{id}/config`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfigState {
    #[serde(deserialize_with = "null_as_default")]
    pub config_id: String,
}
