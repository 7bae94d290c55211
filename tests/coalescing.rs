//! How a gRPC port's answers leave the process: an answer of ordinary
//! size (headers, message and trailers) goes out as one TLS record, not
//! one per HTTP/2 write, on the ports served through the SDK's
//! `tls_handshakes` (the gateway's, checked here, and every adapter's).
//! Counted on the wire by a TCP relay between a real gRPC client and the
//! gateway, which reads the TLS record headers the gateway sends.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays one connection to `target`; counts the TLS records coming back.
async fn counting_relay(target: std::net::SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("localhost:{}", listener.local_addr().unwrap().port());
    let records = Arc::new(AtomicUsize::new(0));
    let counted = records.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        // A record is a 5-byte header (type, version, length) and its body;
        // `skip` is what is left of the current record's body, `header`
        // the part of the next header read so far.
        let (mut skip, mut header) = (0usize, Vec::with_capacity(5));
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                if skip > 0 {
                    let take = skip.min(rest.len());
                    skip -= take;
                    rest = &rest[take..];
                    continue;
                }
                let take = (5 - header.len()).min(rest.len());
                header.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if header.len() == 5 {
                    skip = usize::from(u16::from_be_bytes([header[3], header[4]]));
                    header.clear();
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
            // Counted before the client can see the bytes.
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    (address, records)
}

#[tokio::test]
async fn an_answer_leaves_as_one_tls_record() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let (address, records) = counting_relay(net.gateway_address).await;
    let channel = samverka_gateway::net::client::connect(
        &address,
        "localhost",
        &net.agency_tls("reader").unwrap(),
    )
    .await
    .unwrap();
    let mut client = samverka_proto::v1::record_exchange_client::RecordExchangeClient::new(channel);
    // The connection's first records (settings, session tickets) go first.
    for _ in 0..2 {
        client.get_records(demo_read()).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // HTTP/2 writes a message of 256 bytes or more (1 KiB when the
    // connection takes whole writes) apart from the frames around it, and
    // flushed before the trailers: both used to leave as two records.
    let small = read_request(DEMO_SUBJECT, &["employment.period"], DEMO_PURPOSE);
    for (request, sizes) in [(small, 256..1024), (demo_read(), 1024..16 * 1024)] {
        for call in 0..5 {
            let before = records.load(Ordering::SeqCst);
            let answer = client
                .get_records(request.clone())
                .await
                .unwrap()
                .into_inner();
            let sent = records.load(Ordering::SeqCst) - before;
            let size = answer.encoded_len();
            assert!(
                sizes.contains(&size),
                "answer of {size} bytes, not in {sizes:?}"
            );
            assert_eq!(
                sent, 1,
                "call {call}: an answer of {size} bytes left as {sent} TLS records"
            );
        }
    }
}
