//! gRPC over TLS with client certificates required: trusted clients in Rust, Python, TypeScript
//! (gRPC-Web) and grpcurl get through; a client without a certificate, with an untrusted one, or
//! that does not trust the server is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use auction_bid_service::GrpcTls;
use auction_process::Secret;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, PlaceBidRequest};
use auction_testkit::{locate_tool, python};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::Backend;

struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    server: (String, String),
    client: (String, String),
    rogue_ca: String,
    rogue_client: (String, String),
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![purpose];
    let certificate = params.signed_by(&key, issuer).expect("signed");
    (certificate.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let ca_issuer = ca("auction test CA");
    let rogue_issuer = ca("someone else's CA");
    let pki = Pki {
        dir: tempfile::tempdir().expect("temp dir"),
        ca: ca_issuer.pem(),
        server: leaf(
            &ca_issuer,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            &ca_issuer,
            &["bidder-app"],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        rogue_ca: rogue_issuer.pem(),
        rogue_client: leaf(
            &rogue_issuer,
            &["intruder"],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    };
    for (name, content) in [
        ("ca.pem", &pki.ca),
        ("client.pem", &pki.client.0),
        ("client.key", &pki.client.1),
    ] {
        std::fs::write(pki.dir.path().join(name), content).expect("write");
    }
    pki
}

impl Pki {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

async fn client(
    port: u16,
    trust: &str,
    identity: Option<&(String, String)>,
) -> Result<BidServiceClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trust))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(BidServiceClient::new(channel))
}

async fn highest(client: Result<BidServiceClient<Channel>, String>) -> Result<(), String> {
    let mut client = client?;
    client
        .highest_bid(HighestBidRequest {
            auction_id: "tls".into(),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_admits_trusted_clients_only() {
    let pki = pki();
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.tls = Some(GrpcTls {
        certificate_pem: pki.server.0.clone(),
        key_pem: Secret::new(pki.server.1.clone()),
        client_ca_pem: Some(pki.ca.clone()),
    });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut running = auction_bid_service::spawn(settings, shutdown.clone())
        .await
        .expect("started");
    assert!(
        running
            .wait_caught_up(std::time::Duration::from_secs(30))
            .await
    );
    let port = running.grpc_addr.port();

    let mut trusted = client(port, &pki.ca, Some(&pki.client))
        .await
        .expect("a trusted client connects");
    let placed = trusted
        .place_bid(PlaceBidRequest {
            auction_id: "tls".into(),
            name: "Ada".into(),
            price: 10,
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("accepted over TLS");
    assert_eq!(placed.into_inner().bid.expect("bid").price, 10);

    assert!(
        highest(client(port, &pki.ca, None).await).await.is_err(),
        "a client without a certificate got in"
    );
    assert!(
        highest(client(port, &pki.ca, Some(&pki.rogue_client)).await)
            .await
            .is_err(),
        "a client with an untrusted certificate got in"
    );
    assert!(
        highest(client(port, &pki.rogue_ca, Some(&pki.client)).await)
            .await
            .is_err(),
        "a client that does not trust the server's CA connected anyway"
    );
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let outcome = BidServiceClient::new(channel)
            .highest_bid(HighestBidRequest {
                auction_id: "tls".into(),
            })
            .await;
        assert!(
            outcome.is_err(),
            "a plaintext client got an answer from the TLS port"
        );
    }

    // The Python example with TLS and a client certificate.
    let output = Command::new(python())
        .arg(repo().join("proto/clients/python/bid_client.py"))
        .args(["--target", &format!("localhost:{port}")])
        .arg("--tls-ca")
        .arg(pki.file("ca.pem"))
        .arg("--tls-cert")
        .arg(pki.file("client.pem"))
        .arg("--tls-key")
        .arg(pki.file("client.key"))
        .args(["place", "tls", "Python", "11"])
        .output()
        .expect("python ran");
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("python: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(answer["accepted"], true, "{answer}");

    // The TypeScript example over gRPC-Web with TLS and a client certificate.
    let tsx = repo().join("proto/clients/typescript/node_modules/.bin/tsx");
    assert!(
        tsx.is_file(),
        "the TypeScript example's packages are not installed; run `.ci/test`"
    );
    let output = Command::new(tsx)
        .current_dir(repo().join("proto/clients/typescript"))
        .args(["src/bid_client.ts", "place", "tls", "TypeScript", "12"])
        .env("BID_SERVICE_URL", format!("https://localhost:{port}"))
        .env("BID_SERVICE_CA", pki.file("ca.pem"))
        .env("BID_SERVICE_CLIENT_CERT", pki.file("client.pem"))
        .env("BID_SERVICE_CLIENT_KEY", pki.file("client.key"))
        .output()
        .expect("tsx ran");
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("tsx: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(answer["accepted"], true, "{answer}");

    // grpcurl with TLS and a client certificate.
    let grpcurl = locate_tool("GRPCURL", "grpcurl", ".cache/auction/venv/bin/grpcurl");
    let output = Command::new(grpcurl)
        .arg("-cacert")
        .arg(pki.file("ca.pem"))
        .arg("-cert")
        .arg(pki.file("client.pem"))
        .arg("-key")
        .arg(pki.file("client.key"))
        .args([
            "-d",
            r#"{"auction_id": "tls"}"#,
            &format!("localhost:{port}"),
            "auction.v1.BidService/HighestBid",
        ])
        .output()
        .expect("grpcurl ran");
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.contains("\"name\": \"TypeScript\""),
        "grpcurl over TLS: {answer}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    shutdown.cancel();
    running.stopped().await.expect("stopped cleanly");
}
