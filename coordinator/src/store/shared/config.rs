//! The versions of the services' configuration templates in the store.

use super::{Plan, Script, Sql, first, int, scalar, stmt};
use crate::domain::config::{ConfigVersion, NewConfigVersion};
use crate::store::{ConfigStore, StoreError, rows};
use qserv_model::ServiceName;

const LAST_VERSION_SQL: &str =
    "SELECT COALESCE(MAX(version), 0) AS last FROM config_versions WHERE service = ?";
const INSERT_SQL: &str = "INSERT INTO config_versions (service, version, sha256, content, \
     by_identity, at_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?)";

#[async_trait::async_trait]
impl<S: Sql> ConfigStore for S {
    async fn add_config_version(
        &self,
        new: NewConfigVersion<'_>,
    ) -> Result<ConfigVersion, StoreError> {
        // Two leaders cannot both write (the fence), and one submits in turn: the next number
        // is free. Should it not be, the key refuses the second and nothing is overwritten.
        let script = Script::read_then(
            vec![stmt(LAST_VERSION_SQL, vec![new.service.as_str().into()])],
            move |read| {
                let last = scalar(read, 0, "last")?;
                let version = u32::try_from(last.saturating_add(1)).map_err(|_| {
                    StoreError::Corrupt(format!("config version {last} is out of range"))
                })?;
                Ok(Plan {
                    writes: vec![stmt(
                        INSERT_SQL,
                        vec![
                            new.service.as_str().into(),
                            int(version),
                            new.sha256.into(),
                            new.content.into(),
                            new.by.into(),
                            new.at_ms.into(),
                            new.message.into(),
                        ],
                    )],
                    value: version,
                })
            },
        );
        let (version, _) = self.transact(&script).await?;
        Ok(ConfigVersion {
            service: new.service.clone(),
            version,
            sha256: new.sha256.to_owned(),
            by: new.by.to_owned(),
            at_ms: new.at_ms,
            message: new.message.to_owned(),
        })
    }

    async fn config_history(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        let read = self
            .read(&[stmt(
                rows::CONFIG_HISTORY_SQL,
                vec![service.as_str().into()],
            )])
            .await?;
        read.first()
            .map(|rows| rows.iter().map(rows::config_version).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    async fn config_version(
        &self,
        service: &ServiceName,
        version: u32,
    ) -> Result<Option<(ConfigVersion, String)>, StoreError> {
        let read = self
            .read(&[stmt(
                rows::CONFIG_VERSION_SQL,
                vec![service.as_str().into(), int(version)],
            )])
            .await?;
        first(&read, 0)
            .map(|row| Ok((rows::config_version(row)?, row.text("content")?)))
            .transpose()
    }
}
