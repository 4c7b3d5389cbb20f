//! `fetch_directory`: the breadth-first walk, its page tokens and its errors.

use uig_connector_api::{DirectoryPage, DirectoryRequest, ErrorKind};

use super::*;

fn row(isn: &str, code: &str, name: &str, children: Option<u32>) -> String {
    let children = children.map(|count| format!("<N_CHILDREN>{count}</N_CHILDREN>")).unwrap_or_default();
    format!("<row><ISN>{isn}</ISN><CODE>{code}</CODE><SHORTNAME>{code}</SHORTNAME><FULLNAME>{name}</FULLNAME>{children}</row>")
}

fn rowset(rows: &[String]) -> String {
    format!("<ROWSET>{}</ROWSET>", rows.concat())
}

fn request(directory: &str, page_token: Option<&str>) -> DirectoryRequest {
    DirectoryRequest { directory: directory.into(), page_token: page_token.map(RString::from).into() }
}

/// Returns the entries as tuples of code, name, parent and alternative code.
fn entries(page: &DirectoryPage) -> Vec<(String, String, Option<String>, Option<String>)> {
    page.entries
        .iter()
        .map(|entry| {
            (
                entry.code.to_string(),
                entry.name.to_string(),
                entry.parent.clone().into_option().map(|code| code.to_string()),
                entry.alt_code.clone().into_option().map(|code| code.to_string()),
            )
        })
        .collect()
}

fn entry(
    code: &str,
    name: &str,
    parent: Option<&str>,
    alt_code: Option<&str>,
) -> (String, String, Option<String>, Option<String>) {
    (code.to_string(), name.to_string(), parent.map(str::to_string), alt_code.map(str::to_string))
}

fn token(page: &DirectoryPage) -> Option<String> {
    page.next_page_token.clone().into_option().map(|token| token.to_string())
}

#[test]
fn walk_is_breadth_first() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&rowset(&[
        row("3366101", "VAZ", "LADA (ВАЗ)", Some(2)),
        row("3366102", "KIA", "KIA", Some(1)),
        row("3366103", "UAZ", "УАЗ", Some(0)),
    ]));
    host.queue_result(&rowset(&[row("3367001", "", "2107", Some(0)), row("3367002", "", "Granta", None)]));
    host.queue_result(&rowset(&[row("3367101", "", "Rio", Some(0))]));
    host.queue_result("<ROWSET/>");
    let kias = connector(&host, settings_for_test());

    let first = kias.fetch_directory(&request("car_make", None)).unwrap();
    let second = kias.fetch_directory(&request("car_make", token(&first).as_deref())).unwrap();
    let third = kias.fetch_directory(&request("car_make", token(&second).as_deref())).unwrap();
    let fourth = kias.fetch_directory(&request("car_make", token(&third).as_deref())).unwrap();

    assert_eq!(
        entries(&first),
        [
            entry("3366101", "LADA (ВАЗ)", None, Some("VAZ")),
            entry("3366102", "KIA", None, Some("KIA")),
            entry("3366103", "УАЗ", None, Some("UAZ")),
        ]
    );
    assert_eq!(
        entries(&second),
        [entry("3367001", "2107", Some("3366101"), None), entry("3367002", "Granta", Some("3366101"), None)]
    );
    assert_eq!(entries(&third), [entry("3367101", "Rio", Some("3366102"), None)]);
    assert!(entries(&fourth).is_empty());
    assert_eq!(token(&fourth), None);

    let calls = host.calls();
    let listed: Vec<(&str, Option<&str>)> =
        calls.iter().skip(1).map(|call| (call.procedure.as_str(), call.param("DictiISN"))).collect();
    assert_eq!(
        listed,
        [
            ("GETDICTILIST", Some("2001")),
            ("GETDICTILIST", Some("3366101")),
            ("GETDICTILIST", Some("3366102")),
            ("GETDICTILIST", Some("3367002")),
        ]
    );
    assert!(host.requests().iter().all(|request| request.idempotent));
}

#[test]
fn flat_directory_is_one_page() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&rowset(&[
        row("2002077", "77", "г. Москва", Some(0)),
        row("2002050", "50", "Московская область", Some(0)),
    ]));
    let kias = connector(&host, settings_for_test());

    let page = kias.fetch_directory(&request("region", None)).unwrap();

    assert_eq!(page.entries.len(), 2);
    assert_eq!(token(&page), None);
    assert_eq!(host.calls()[1].param("DictiISN"), Some("2002"));
}

#[test]
fn empty_directory_has_no_entries() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("");
    let kias = connector(&host, settings_for_test());

    let page = kias.fetch_directory(&request("car_make", None)).unwrap();

    assert!(page.entries.is_empty());
    assert_eq!(token(&page), None);
}

#[test]
fn walk_stops_at_depth_limit() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    let kias = connector(&host, settings_for_test());
    let mut page_token: Option<String> = None;
    let mut pages = 0;

    // A node that lists itself as its own child forever.
    loop {
        host.queue_result(&rowset(&[row("5", "LOOP", "Петля", Some(1))]));
        let page = kias.fetch_directory(&request("car_make", page_token.as_deref())).unwrap();
        pages += 1;
        page_token = token(&page);
        if page_token.is_none() {
            break;
        }
        assert!(pages < 20, "the walk did not stop");
    }

    assert_eq!(pages, crate::directory::MAX_DEPTH as usize);
}

#[test]
fn unknown_directory_names_known_ones() {
    let host = FakeHost::default();
    let kias = connector(&host, settings_for_test());

    let error = kias.fetch_directory(&request("car_model", None)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("unknown directory \"car_model\""), "{}", error.message);
    assert!(error.message.contains("car_make, region"), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn no_directories_configured() {
    let host = FakeHost::default();
    let mut settings = settings_for_test();
    settings.directories.clear();
    let kias = connector(&host, settings);

    let error = kias.fetch_directory(&request("car_make", None)).unwrap_err();

    assert!(error.message.ends_with("names none"), "{}", error.message);
}

#[test]
fn token_of_other_directory_rejected() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&rowset(&[row("3366101", "VAZ", "LADA (ВАЗ)", Some(2))]));
    let kias = connector(&host, settings_for_test());
    let first = kias.fetch_directory(&request("car_make", None)).unwrap();

    let error = kias.fetch_directory(&request("region", token(&first).as_deref())).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_page_token");
    assert_eq!(host.requests().len(), 2);
}

#[test]
fn directory_errors_pass_through() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_error("104", "Справочник не найден");
    let kias = connector(&host, settings_for_test());

    let error = kias.fetch_directory(&request("car_make", None)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "104");
    assert!(error.message.contains("GETDICTILIST"), "{}", error.message);
}

#[test]
fn directory_session_expiry_reauthenticates() {
    let host = FakeHost::default();
    host.queue_auth("SID-1");
    host.queue_error("001", "Сессия истекла");
    host.queue_auth("SID-2");
    host.queue_result(&rowset(&[row("3366101", "VAZ", "LADA (ВАЗ)", Some(0))]));
    let kias = connector(&host, settings_for_test());

    let page = kias.fetch_directory(&request("car_make", None)).unwrap();

    assert_eq!(page.entries.len(), 1);
    assert_eq!(host.calls()[3].param("Sid"), Some("SID-2"));
    let warnings = host.logs_at(LogLevel::WARN);
    assert!(warnings[0].contains("directory=car_make DictiISN=2001"), "{warnings:?}");
}

#[test]
fn row_without_isn_fails_page() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ROWSET><row><CODE>VAZ</CODE></row></ROWSET>");
    let kias = connector(&host, settings_for_test());

    let error = kias.fetch_directory(&request("car_make", None)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "malformed_response");
}

#[test]
fn mock_car_makes_page_read() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    let body = include_bytes!("fixtures/getdictilist_car_makes.xml").to_vec();
    host.queue(Ok(response_bytes(200, "text/xml; charset=utf-8", body)));
    let kias = connector(&host, settings_for_test());

    let page = kias.fetch_directory(&request("car_make", None)).unwrap();

    let entries = entries(&page);
    let codes: Vec<Option<&str>> = entries.iter().map(|entry| entry.3.as_deref()).collect();
    let expected = ["VAZ", "KIA", "HYUNDAI", "TOYOTA", "VOLKSWAGEN", "RENAULT", "SKODA", "BMW"].map(Some);
    assert_eq!(codes, expected);
    assert_eq!(entries[0], entry("3366101", "LADA (ВАЗ)", None, Some("VAZ")));
    let token: Value = serde_json::from_str(&token(&page).unwrap()).unwrap();
    assert_eq!(token["queue"].as_array().unwrap().len(), 8);
    assert_eq!(token["queue"][0], json!(["3366101", 1]));
}
