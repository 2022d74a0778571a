// The plugin's client of podroute-ipamd: one connection per invocation (a
// Unix socket, or HTTPS with the node's certificate), each call under the
// configured deadline, and gRPC statuses mapped onto CNI error codes as
// proto/proto/ipam.proto documents them (UNAVAILABLE: try again later).

use std::future::Future;
use std::time::Duration;

use podroute_proto::common::v1::{AddressFamily, GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{
    AllocateRequest, AllocatedAddress, GarbageCollectRequest, GarbageCollectResponse,
    ReleaseRequest, ReleaseResponse, ShowAddressRequest, ShowAddressResponse,
};
use podroute_proto::ipamd_client::{self, ConnectError};
use tonic::Code;
use tonic::transport::Channel;

use crate::config::{Family, PluginConf};
use crate::error::{CniError, ErrorCode};

/// A connected ipamd client.
pub struct Ipamd {
    client: IpamClient<Channel>,
    timeout: Duration,
    /// Where ipamd is, for error messages.
    endpoint: String,
}

/// What to allocate for one attachment.
#[derive(Debug, Clone)]
pub struct AllocationRequest<'a> {
    pub node: &'a str,
    pub handle: &'a str,
    pub pod_namespace: &'a str,
    pub pod_name: &'a str,
    pub families: &'a [Family],
    pub pools: &'a [String],
    pub addresses: &'a [std::net::IpAddr],
}

impl Ipamd {
    /// Connects to the configured ipamd. A missing socket or a refused
    /// connection is "try again later" (11): ipamd may be starting.
    pub async fn connect(conf: &PluginConf) -> Result<Ipamd, CniError> {
        let endpoint = conf.ipamd.to_string();
        let timeout = conf.timeout;
        let connecting = ipamd_client::connect(&conf.ipamd, conf.tls.as_ref());
        let channel = match tokio::time::timeout(timeout, connecting).await {
            Ok(channel) => channel.map_err(connect_error)?,
            Err(_) => {
                return Err(unreachable_error(
                    &endpoint,
                    &format!("no connection within {}s", timeout.as_secs()),
                ));
            }
        };
        Ok(Ipamd {
            client: IpamClient::new(channel),
            timeout,
            endpoint,
        })
    }

    pub async fn version(&mut self) -> Result<VersionInfo, CniError> {
        let mut client = self.client.clone();
        self.call("GetVersion", client.get_version(GetVersionRequest {}))
            .await
    }

    pub async fn allocate(
        &mut self,
        request: &AllocationRequest<'_>,
    ) -> Result<Vec<AllocatedAddress>, CniError> {
        let message = AllocateRequest {
            node: request.node.to_owned(),
            handle: request.handle.to_owned(),
            pod_namespace: request.pod_namespace.to_owned(),
            pod_name: request.pod_name.to_owned(),
            families: request
                .families
                .iter()
                .map(|f| match f {
                    Family::Ipv4 => AddressFamily::Ipv4 as i32,
                    Family::Ipv6 => AddressFamily::Ipv6 as i32,
                })
                .collect(),
            pools: request.pools.to_vec(),
            addresses: request.addresses.iter().map(|a| a.to_string()).collect(),
        };
        let mut client = self.client.clone();
        let response = self.call("Allocate", client.allocate(message)).await?;
        Ok(response.addresses)
    }

    pub async fn release(&mut self, handle: &str) -> Result<ReleaseResponse, CniError> {
        let mut client = self.client.clone();
        let request = ReleaseRequest {
            handle: handle.to_owned(),
        };
        self.call("Release", client.release(request)).await
    }

    pub async fn garbage_collect(
        &mut self,
        node: &str,
        valid_handles: Vec<String>,
        handle_prefix: &str,
    ) -> Result<GarbageCollectResponse, CniError> {
        let mut client = self.client.clone();
        let request = GarbageCollectRequest {
            node: node.to_owned(),
            valid_handles,
            handle_prefix: handle_prefix.to_owned(),
        };
        self.call("GarbageCollect", client.garbage_collect(request))
            .await
    }

    /// Who holds `address` (CHECK compares the holder with our handle).
    pub async fn show_address(
        &mut self,
        address: std::net::IpAddr,
    ) -> Result<ShowAddressResponse, CniError> {
        let mut client = self.client.clone();
        let request = ShowAddressRequest {
            address: address.to_string(),
        };
        self.call("ShowAddress", client.show_address(request)).await
    }

    /// Runs one call under the deadline and maps its status.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CniError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status_error(&self.endpoint, what, &status)),
            Err(_) => Err(CniError::new(
                ErrorCode::TryAgainLater,
                format!(
                    "podroute-ipamd at {} did not answer {what} within {}s",
                    self.endpoint,
                    self.timeout.as_secs()
                ),
            )),
        }
    }
}

/// The CNI error for a gRPC status: transient ones are "try again later",
/// the rest pass ipamd's words on as ours (101).
pub fn status_error(endpoint: &str, what: &str, status: &tonic::Status) -> CniError {
    let transient = matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled
    );
    if transient {
        CniError::new(
            ErrorCode::TryAgainLater,
            format!(
                "podroute-ipamd at {endpoint} cannot serve {what} right now: {}",
                status.message()
            ),
        )
    } else {
        CniError::new(
            ErrorCode::IpamRefused,
            format!("podroute-ipamd refused {what}: {}", status.message()),
        )
        .with_details(format!("gRPC status {:?} from {endpoint}", status.code()))
    }
}

fn unreachable_error(endpoint: &str, reason: &str) -> CniError {
    CniError::new(
        ErrorCode::TryAgainLater,
        format!("podroute-ipamd at {endpoint} is not answering: {reason}"),
    )
    .with_details("is podroute-ipamd running? the runtime retries the call")
}

fn connect_error(e: ConnectError) -> CniError {
    match e {
        ConnectError::Unreachable { endpoint, reason } => unreachable_error(&endpoint, &reason),
        ConnectError::TlsFile { .. } => {
            CniError::new(ErrorCode::InvalidNetworkConfig, e.to_string())
        }
        ConnectError::Invalid { .. } => CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("ipamd.endpoint {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_try_again_later() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted] {
            let e = status_error("unix:///x", "Allocate", &tonic::Status::new(code, "store"));
            assert_eq!(e.code, ErrorCode::TryAgainLater, "{code:?}");
        }
    }

    #[test]
    fn refusals_pass_ipamds_words_on() {
        let status =
            tonic::Status::resource_exhausted("no address left in pools default-ipv4 (64/64 used)");
        let e = status_error("unix:///x", "Allocate", &status);
        assert_eq!(e.code, ErrorCode::IpamRefused);
        assert!(
            e.msg
                .contains("no address left in pools default-ipv4 (64/64 used)")
        );
        assert!(e.details.contains("ResourceExhausted"));
    }
}
