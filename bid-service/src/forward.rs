//! Forwarding `PlaceBid`, `CreateAuction` and `CancelAuction` to the replica that owns the auction's partition, transparently to the
//! client. The owner is the one the state topic's `#owner` record names (written by the owner
//! in its first transaction, so a fenced replica cannot claim a partition). A forwarded call
//! carries [`FORWARDED_HEADER`]; a replica that receives one for a partition it does not own
//! answers UNAVAILABLE instead of forwarding again, so calls never loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use auction_proto::v1::bid_service_client::BidServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Marks a call forwarded by another replica.
pub(crate) const FORWARDED_HEADER: &str = "x-auction-forwarded";

/// gRPC clients of the other replicas, by address.
#[derive(Debug, Default)]
pub(crate) struct Forwarder {
    clients: Mutex<HashMap<String, BidServiceClient<Channel>>>,
}

impl Forwarder {
    fn client(&self, address: &str) -> Result<BidServiceClient<Channel>, Status> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| {
                Status::unavailable(format!(
                    "the owner's address {address:?} cannot be used ({e}); retry with the same request_id"
                ))
            })?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let client = BidServiceClient::new(endpoint.connect_lazy());
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// Makes the call `method` with `request` on the owner at `address`, within `deadline`.
    /// `Err(None)`: the owner could not be reached at all (nothing was sent), so the caller may
    /// look for the owner again.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        address: &str,
        request: Req,
        deadline: Duration,
        method: F,
    ) -> Result<Resp, Option<Status>>
    where
        F: FnOnce(BidServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let client = self.client(address).map_err(Some)?;
        let mut call = tonic::Request::new(request);
        call.set_timeout(deadline);
        call.metadata_mut().insert(
            FORWARDED_HEADER,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        match method(client, call).await {
            Ok(response) => {
                metrics::counter!(crate::metrics::BIDS_FORWARDED, "outcome" => "ok").increment(1);
                Ok(response.into_inner())
            }
            Err(status) if unreachable(&status) => {
                metrics::counter!(crate::metrics::BIDS_FORWARDED, "outcome" => "unreachable")
                    .increment(1);
                Err(None)
            }
            Err(status) => {
                metrics::counter!(crate::metrics::BIDS_FORWARDED, "outcome" => format!("{:?}", status.code()))
                    .increment(1);
                // A transport failure reaches here as UNKNOWN or CANCELLED: to the client it
                // is the owner being unreachable.
                if matches!(
                    status.code(),
                    Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                ) {
                    Err(Some(Status::unavailable(format!(
                        "the owner of the auction's partition ({address}) did not answer ({}); retry with the same request_id",
                        status.message()
                    ))))
                } else {
                    Err(Some(status))
                }
            }
        }
    }
}

/// Whether the call failed before reaching the owner: the connection could not be made.
fn unreachable(status: &Status) -> bool {
    use std::error::Error as _;
    let mut source = status.source();
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        source = error.source();
    }
    status.code() == Code::Unavailable && status.message() == "tcp connect error"
}
