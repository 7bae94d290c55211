//! The channel to one adapter, made with the gateway's TLS material
//! towards adapters as it was at the time, and made again when that
//! material is reloaded (a new CRL, client certificate or trust bundle).
//!
//! A channel keeps its HTTP/2 connection for as long as it works, so a
//! reload that only changed what new handshakes check would leave an
//! adapter revoked since on its old connection. Instead, the first call
//! after a reload takes a new channel, whose first call makes a new
//! handshake under the new material; calls still under way on the old
//! channel finish on it, and its connection closes when the last of them
//! lets go.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use tonic::transport::{Channel, Endpoint};

use crate::config::AdapterRoute;
use crate::net::adapter_tls::AdapterTlsMaterial;
use crate::net::tls::ServerTls;

/// One adapter's channel, current with the TLS material.
#[derive(Debug, Clone)]
pub(super) struct AdapterChannel {
    route: AdapterRoute,
    server_name: ServerName<'static>,
    tls: Arc<ServerTls>,
    /// The material the channel was made with, and the channel.
    current: Arc<Mutex<(Arc<AdapterTlsMaterial>, AdapterClient<Channel>)>>,
}

impl AdapterChannel {
    /// A channel to `route`'s adapter; it connects at its first call.
    pub(super) fn new(route: &AdapterRoute, tls: Arc<ServerTls>) -> Result<Self, String> {
        let server_name = ServerName::try_from(route.server_name.clone())
            .map_err(|e| format!("adapters {}: server name: {e}", route.name))?;
        let material = tls.adapter_material();
        let client = client(route, &server_name, material.clone())?;
        Ok(AdapterChannel {
            route: route.clone(),
            server_name,
            tls,
            current: Arc::new(Mutex::new((material, client))),
        })
    }

    /// The client to call the adapter with: the current channel, or a new
    /// one if the TLS material was reloaded since it was made.
    pub(super) fn client(&self) -> AdapterClient<Channel> {
        let material = self.tls.adapter_material();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&current.0, &material) {
            match client(&self.route, &self.server_name, material.clone()) {
                Ok(fresh) => {
                    tracing::info!(source = %self.route.name, "TLS material towards adapters reloaded: new connections to this adapter");
                    *current = (material, fresh);
                }
                // The material was checked when it was loaded; should it
                // not do for this adapter, the old channel stays.
                Err(e) => {
                    tracing::error!(source = %self.route.name, error = %e, "cannot use the reloaded TLS material towards this adapter")
                }
            }
        }
        current.1.clone()
    }
}

/// A lazily connecting client for `route`'s adapter whose every connection
/// uses `material`. TLS is done by this connector rather than by tonic, so
/// that the adapter's certificate is checked against the routing table
/// (see [`crate::net::adapter_tls`]).
fn client(
    route: &AdapterRoute,
    server_name: &ServerName<'static>,
    material: Arc<AdapterTlsMaterial>,
) -> Result<AdapterClient<Channel>, String> {
    let config = material.client_config(&route.org_number)?;
    let (server_name, address) = (server_name.clone(), route.address.clone());
    let connect = tower::service_fn(move |_: tonic::transport::Uri| {
        let (server_name, address, config) = (server_name.clone(), address.clone(), config.clone());
        async move {
            let connector = tokio_rustls::TlsConnector::from(config);
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{}", route.address))
        .map_err(|e| format!("adapters {}: address: {e}", route.name))?
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector_lazy(connect);
    Ok(AdapterClient::new(channel))
}
