use std::io::ErrorKind;
use std::net::TcpStream;

use crate::util::*;
use zoho_device_sim::{SimConfig, Simulator};

#[test]
fn works_from_sync_code_and_drop_closes_every_port() {
    let sim = Simulator::spawn(SimConfig::default()).unwrap();
    assert_eq!(sim.locations(), vec!["us".to_owned(), "eu".to_owned()]);
    let addrs: Vec<String> = sim
        .locations()
        .iter()
        .map(|l| sim.accounts_url(l).strip_prefix("http://").unwrap().to_owned())
        .collect();
    assert_ne!(addrs[0], addrs[1]);
    for a in &addrs {
        assert!(a.starts_with("127.0.0.1:"));
        TcpStream::connect(a).unwrap();
    }
    assert!(sim.url("jp").is_none());
    drop(sim);
    for a in &addrs {
        let e = TcpStream::connect(a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_inside_another_runtime() {
    let sim = Simulator::spawn(fast()).unwrap();
    let t = pair(&sim).await;
    assert!(t["refresh_token"].is_string());
    drop(sim);
}

#[test]
fn a_contradictory_config_is_refused_before_binding() {
    let cfg = SimConfig::default().user("x@example.com", "jp");
    let e = Simulator::spawn(cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let cfg = SimConfig::default().client(CLIENT, SECRET, &["in"]);
    assert_eq!(Simulator::spawn(cfg).unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn port_base_puts_dcs_on_consecutive_ports() {
    // Find a free pair near a random high port; retry a few bases if taken.
    for base in [41_731u16, 43_917, 45_123, 47_311] {
        if let Ok(sim) = Simulator::spawn(SimConfig::default().port_base(base)) {
            assert_eq!(sim.accounts_url("us"), format!("http://127.0.0.1:{base}"));
            assert_eq!(sim.accounts_url("eu"), format!("http://127.0.0.1:{}", base + 1));
            return;
        }
    }
    panic!("no free port pair found");
}
