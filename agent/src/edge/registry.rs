//! The replication registry's commands on the repl node: a worker's holdings, forgetting a
//! worker with its rows saved, and a worker's state. Admission is done by the caller.

use qserv_proto::v1::{
    CascadedRows, DatabaseHoldings, ForgetWorkerResponse, SetWorkerStateRequest,
    SetWorkerStateResponse, WorkerHoldingsResponse,
};
use tonic::Status;

use crate::database::holdings;
use crate::edge::grpc::AgentService;

impl AgentService {
    pub(crate) async fn holdings_reply(
        &self,
        worker: &str,
    ) -> Result<WorkerHoldingsResponse, Status> {
        let held = holdings::holdings(&self.options, self.role, worker)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(WorkerHoldingsResponse {
            databases: held
                .databases
                .into_iter()
                .map(|d| DatabaseHoldings {
                    database: d.database,
                    replicas: d.replicas,
                    sole_copies: d.sole_copies,
                    sole_chunks: d.sole_chunks,
                    contributions: d.contributions,
                })
                .collect(),
            cascaded: held
                .cascaded
                .into_iter()
                .map(|(table, rows)| CascadedRows { table, rows })
                .collect(),
        })
    }

    pub(crate) async fn forget_reply(
        &self,
        worker: &str,
        job: &str,
    ) -> Result<ForgetWorkerResponse, Status> {
        if job.is_empty() {
            return Err(Status::invalid_argument(
                "forgetting a worker needs the job id that names its saved file",
            ));
        }
        let done =
            crate::database::forget::forget(&self.options, self.role, worker, &self.saved_dir, job)
                .await
                .map_err(|e| self.admin_status(e))?;
        Ok(ForgetWorkerResponse {
            removed: done.removed,
            saved_path: done
                .saved
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            saved_rows: done.rows,
            status: Some(self.checked().await),
        })
    }

    pub(crate) async fn state_reply(
        &self,
        request: &SetWorkerStateRequest,
    ) -> Result<SetWorkerStateResponse, Status> {
        let changed = holdings::set_state(
            &self.options,
            self.role,
            &request.worker_id,
            request.is_enabled,
            request.is_read_only,
        )
        .await
        .map_err(|e| self.admin_status(e))?;
        Ok(SetWorkerStateResponse {
            found: changed.is_some(),
            changed: changed.unwrap_or(false),
            status: Some(self.checked().await),
        })
    }
}
