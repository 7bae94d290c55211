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

/// Finds TLS record headers in a stream read piece by piece. A record is
/// a 5-byte header (type, version, length) and its body.
#[derive(Default)]
struct RecordHeaders {
    /// What is left of the current record's body.
    body_left: usize,
    /// The part of the next header read so far.
    header: Vec<u8>,
}

impl RecordHeaders {
    /// How many headers end in `bytes`, the stream's next piece.
    fn count(&mut self, mut bytes: &[u8]) -> usize {
        let mut headers = 0;
        while !bytes.is_empty() {
            let skip = self.body_left.min(bytes.len());
            self.body_left -= skip;
            bytes = &bytes[skip..];
            let take = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                headers += 1;
            }
        }
        headers
    }
}

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
        let mut headers = RecordHeaders::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            counted.fetch_add(headers.count(&buf[..n]), Ordering::SeqCst);
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

/// The counter itself: headers and bodies split anywhere across reads.
#[test]
fn record_headers_are_counted_across_reads() {
    let stream = [&[23u8, 3, 3, 0, 3][..], b"abc", &[23, 3, 3, 0, 2], b"de"].concat();
    for split in 0..=stream.len() {
        let mut headers = RecordHeaders::default();
        let (a, b) = stream.split_at(split);
        assert_eq!(headers.count(a) + headers.count(b), 2, "split at {split}");
    }
    // A body that happens to hold header-like bytes is skipped.
    let tricky = [&[23u8, 3, 3, 0, 5][..], &[23, 3, 3, 0, 0]].concat();
    assert_eq!(RecordHeaders::default().count(&tricky), 1);
}
