//! The device flow fed arbitrary replies and transport failures in sequence, on a clock that
//! moves forward by arbitrary steps: no panic, and no wait ever points before `now`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device_core::{
    ClientCredentials, ClientSecret, DataCenter, DeviceFlow, FlowConfig, KioskPolicy, Profile, Server, ServerUrl,
    Step, Timestamp, TransportError,
};

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 302];
const TRANSPORT: [TransportError; 6] = [
    TransportError::Connect,
    TransportError::Dns,
    TransportError::Timeout,
    TransportError::Reset,
    TransportError::Tls,
    TransportError::Other,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let profile = if mode & 1 == 0 { Profile::Zoho } else { Profile::Rfc8628 };
    let server = match (profile, mode & 2 == 0) {
        (Profile::Zoho, true) => Server::zoho_dc(DataCenter::Us),
        (Profile::Zoho, false) => Server::zoho(ServerUrl::parse("http://127.0.0.1:9").unwrap()),
        _ => Server::Standard {
            device_authorization_url: ServerUrl::parse("https://idp.example/device").unwrap(),
            token_url: ServerUrl::parse("https://idp.example/token").unwrap(),
        },
    };
    let config = FlowConfig {
        profile,
        kiosk: (mode & 4 != 0).then(KioskPolicy::default),
        ..FlowConfig::default()
    };
    let client = ClientCredentials {
        client_id: "1004.FUZZ".into(),
        client_secret: Some(ClientSecret::new("secret")),
    };
    let mut now = Timestamp::from_millis(u64::from(mode) << 8);
    let mut flow = DeviceFlow::new(config, client, server, now);
    // Each record: [kind, len, body...]. kind: low 3 bits status, bit 3 transport error,
    // high bits a clock step.
    for _ in 0..64 {
        let step = match flow.poll(now) {
            Ok(s) => s,
            Err(_) => return,
        };
        match step {
            Step::Wait(t) => {
                assert!(t >= now, "a wait into the past: {t:?} < {now:?}");
                now = t;
            }
            Step::Done(_) => return,
            Step::Prompt(p) => assert!(p.expires_at >= now),
            Step::Notice(_) => {}
            Step::Send(_) => {
                let [kind, len, tail @ ..] = rest else { return };
                let n = usize::from(*len).min(tail.len());
                let (body, tail) = tail.split_at(n);
                rest = tail;
                now = now.saturating_add(core::time::Duration::from_millis(u64::from(kind >> 4) * 997));
                if kind & 8 != 0 {
                    flow.handle_transport_error(now, TRANSPORT[usize::from(kind & 7) % TRANSPORT.len()]);
                } else {
                    flow.handle_response(now, STATUSES[usize::from(kind & 7)], body);
                }
            }
        }
    }
});
