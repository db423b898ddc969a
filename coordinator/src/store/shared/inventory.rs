//! The instance in the store: its name, mode and epoch, and the nodes of its inventory.

use super::{Plan, Script, Sql, all, first, int, scalar, stmt};
use crate::domain::spec::{InstanceSpec, NodeSpec};
use crate::domain::{Epoch, Mode};
use crate::store::{Declared, Inventory, InventoryStore, StoreError, rows};

const DELETE_NODES_SQL: &str = "DELETE FROM nodes";
const INSERT_NODE_SQL: &str = "INSERT INTO nodes (name, role, agent, position) VALUES (?, ?, ?, ?)";
const SET_REGISTERED_SQL: &str = "UPDATE nodes SET registered_id = ? WHERE name = ?";
const REMOVE_NODE_SQL: &str = "DELETE FROM nodes WHERE name = ?";
const SET_SERVICES_SQL: &str = "UPDATE instance SET services = ? WHERE id = 1";
const FORGET_SQL: &str =
    "UPDATE instance SET name = '', mode = 'uninstalled', epoch = ? WHERE id = 1";

fn epoch(epoch: Option<Epoch>) -> super::Bind {
    int(Epoch::to_wire(epoch))
}

/// The service order as the `instance.services` column keeps it.
fn order_document(spec: &InstanceSpec) -> Result<String, StoreError> {
    serde_json::to_string(&spec.services)
        .map_err(|e| StoreError::Corrupt(format!("cannot write the service order: {e}")))
}

#[async_trait::async_trait]
impl<S: Sql> InventoryStore for S {
    fn is_open(&self) -> bool {
        Sql::is_open(self)
    }

    async fn load(&self) -> Result<Option<Inventory>, StoreError> {
        let read = self
            .read(&[
                stmt(rows::INSTANCE_SQL, vec![]),
                stmt(rows::NODES_SQL, vec![]),
            ])
            .await?;
        let Some(head) = first(&read, 0) else {
            return Ok(None);
        };
        rows::inventory(head, all(&read, 1)).map(Some)
    }

    async fn instance_row(&self) -> Result<Option<(String, Mode, Option<Epoch>)>, StoreError> {
        let read = self.read(&[stmt(rows::INSTANCE_SQL, vec![])]).await?;
        first(&read, 0).map(rows::instance).transpose()
    }

    async fn declare(&self, spec: &InstanceSpec, when: Declared) -> Result<Inventory, StoreError> {
        let mut writes = vec![
            stmt(
                self.dialect().declare_instance,
                vec![
                    (&spec.name).into(),
                    Mode::Uninstalled.name().into(),
                    super::Bind::Text(order_document(spec)?),
                ],
            ),
            stmt(DELETE_NODES_SQL, vec![]),
        ];
        writes.extend(spec.nodes.iter().enumerate().map(|(position, node)| {
            stmt(
                INSERT_NODE_SQL,
                vec![
                    (&node.name).into(),
                    node.role.name().into(),
                    (&node.agent).into(),
                    int(position),
                ],
            )
        }));
        let script = Script::writes(writes);
        let script = match when {
            Declared::ByJob => script,
            Declared::AtStart => script.without_fence(),
        };
        self.transact(&script).await?;
        self.load()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the instance row vanished after writing it".into()))
    }

    /// Written at start, before any term, from a spec that was checked: the order is the
    /// spec's to say.
    async fn set_service_order(&self, spec: &InstanceSpec) -> Result<(), StoreError> {
        let write = stmt(
            SET_SERVICES_SQL,
            vec![super::Bind::Text(order_document(spec)?)],
        );
        self.transact(&Script::writes(vec![write]).without_fence())
            .await?;
        Ok(())
    }

    /// Raises the epoch without changing the mode: commands that precede a mode change (`down`
    /// stops services before the mode is stored) then carry an epoch the store already holds.
    async fn set_epoch(&self, value: Epoch) -> Result<(), StoreError> {
        let write = stmt(self.dialect().set_epoch, vec![epoch(Some(value))]);
        self.transact(&Script::writes(vec![write])).await?;
        Ok(())
    }

    async fn set_mode(&self, mode: Mode, value: Option<Epoch>) -> Result<(), StoreError> {
        let write = stmt(
            self.dialect().set_mode,
            vec![mode.name().into(), epoch(value)],
        );
        self.transact(&Script::writes(vec![write])).await?;
        Ok(())
    }

    async fn set_registered_ids(&self, ids: &[(String, Option<String>)]) -> Result<(), StoreError> {
        let writes = ids
            .iter()
            .map(|(node, id)| stmt(SET_REGISTERED_SQL, vec![id.as_deref().into(), node.into()]))
            .collect();
        self.transact(&Script::writes(writes)).await?;
        Ok(())
    }

    /// Appends nodes to the inventory (`workers add`); a node already there as given is kept,
    /// so a resumed job can run this again.
    async fn add_nodes(&self, nodes: &[NodeSpec]) -> Result<(), StoreError> {
        let add = self.dialect().add_node;
        let script = Script::read_then(
            vec![stmt(self.dialect().next_node_position, vec![])],
            |read| {
                let next = scalar(read, 0, "next")?;
                let writes = nodes
                    .iter()
                    .enumerate()
                    .map(|(offset, node)| {
                        stmt(
                            add,
                            vec![
                                (&node.name).into(),
                                node.role.name().into(),
                                (&node.agent).into(),
                                next.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
                                    .into(),
                            ],
                        )
                    })
                    .collect();
                Ok(Plan { writes, value: () })
            },
        );
        self.transact(&script).await?;
        Ok(())
    }

    async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        let write = stmt(REMOVE_NODE_SQL, vec![name.into()]);
        self.transact(&Script::writes(vec![write])).await?;
        Ok(())
    }

    /// Forgets the inventory after `delete`. The epoch keeps growing: an agent must never take a
    /// later instance's mode for an older one's.
    async fn forget(&self, value: Epoch) -> Result<(), StoreError> {
        let writes = vec![
            stmt(DELETE_NODES_SQL, vec![]),
            stmt(FORGET_SQL, vec![epoch(Some(value))]),
        ];
        self.transact(&Script::writes(writes)).await?;
        Ok(())
    }
}
