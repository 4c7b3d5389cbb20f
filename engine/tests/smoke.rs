//! Start-to-finish smoke test: a signed sync send through the real AVINFO plugin and mock.

mod common;

use common::{Gateway, Mock};

#[test]
fn sync_send_reaches_mock() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let (status, body) = gateway.call(
        "POST",
        "/sync/message/send",
        &[("recipient", "avinfo"), ("entity", "vehicle"), ("message", r#"{"vin":"XTA21099043765432"}"#)],
    );

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["data"]["vin"], "XTA21099043765432");
    assert_eq!(body["data"]["brand"]["code"], "1001");
    assert_eq!(mock.avinfo_requests(), 1);
    assert_eq!(gateway.count_messages(), 1);
}
