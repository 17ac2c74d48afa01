//! The Configuration Manager calls: SkySQL's durable server variables. One custom
//! configuration per managed service, attached to it; its values are what the server starts
//! with, so a replica's `read_only = ON` there survives every restart.

use super::client::SkysqlClient;
use super::error::SkysqlError;
use super::request;
use super::types::{Config, ConfigKey, ConfigValue, CreateConfigRequest, ServiceConfigState};

impl SkysqlClient {
    /// Every variable a configuration of `topology` accepts (every page).
    pub async fn list_config_keys(&self, topology: &str) -> Result<Vec<ConfigKey>, SkysqlError> {
        self.token_pages(|token| request::list_config_keys(topology, token))
            .await
    }

    /// Every custom configuration the key can see (every page).
    pub async fn list_configs(&self) -> Result<Vec<Config>, SkysqlError> {
        self.token_pages(request::list_configs).await
    }

    /// `POST /provisioning/v1/configs`. After an ambiguous failure it looks the configuration
    /// up by name before re-sending, so a retry never makes a second one.
    pub async fn create_config(&self, body: &CreateConfigRequest) -> Result<Config, SkysqlError> {
        let req = request::create_config(body);
        let name = body.name.as_str();
        self.execute_checked(&req, move || async move {
            Ok(self
                .list_configs()
                .await?
                .into_iter()
                .find(|c| c.name == name))
        })
        .await
    }

    /// `DELETE /provisioning/v1/configs/{id}`; one already gone counts as deleted.
    pub async fn delete_config(&self, id: &str) -> Result<(), SkysqlError> {
        match self.execute(&request::delete_config(id), &mut 0).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The values set in a configuration, by config key id; `Ok(None)` when it does not
    /// exist (404).
    pub async fn get_config_values(
        &self,
        id: &str,
    ) -> Result<Option<Vec<ConfigValue>>, SkysqlError> {
        match self.call(&request::get_config_values(id)).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST …/configs/{id}/values/{variable}` (204).
    pub async fn set_config_value(
        &self,
        id: &str,
        variable: &str,
        value: &str,
    ) -> Result<(), SkysqlError> {
        self.execute(&request::set_config_value(id, variable, value), &mut 0)
            .await
            .map(|_| ())
    }

    /// `DELETE …/configs/{id}/values/{variable}` (204): back to the server's default.
    pub async fn unset_config_value(&self, id: &str, variable: &str) -> Result<(), SkysqlError> {
        self.execute(&request::unset_config_value(id, variable), &mut 0)
            .await
            .map(|_| ())
    }

    /// `POST /provisioning/v1/services/{id}/config`: attach a configuration.
    pub async fn attach_config(
        &self,
        service_id: &str,
        config_id: &str,
    ) -> Result<ServiceConfigState, SkysqlError> {
        self.call(&request::attach_config(service_id, config_id))
            .await
    }
}
