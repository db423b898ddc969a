//! The coordinator's gRPC service for the CLI. Reads come from the snapshot only.

use std::pin::Pin;

use futures::Stream;
use qserv_proto::v1::coordinator_server::Coordinator;
use qserv_proto::v1::{InstanceStatus, InstanceStatusRequest, VersionInfo, VersionRequest};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

pub struct CoordinatorService {
    snapshot: watch::Receiver<InstanceStatus>,
}

impl CoordinatorService {
    pub fn new(snapshot: watch::Receiver<InstanceStatus>) -> CoordinatorService {
        CoordinatorService { snapshot }
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<InstanceStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_status(
        &self,
        _request: Request<InstanceStatusRequest>,
    ) -> Result<Response<InstanceStatus>, Status> {
        Ok(Response::new(self.snapshot.borrow().clone()))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<InstanceStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let stream = WatchStream::new(self.snapshot.clone()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(VersionInfo {
            version: qserv_proto::VERSION.to_owned(),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
        }))
    }
}
