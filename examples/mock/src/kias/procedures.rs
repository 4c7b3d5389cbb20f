//! The procedures of the mock KIAS: `Auth`, the default `User_*` procedures and `GETDICTILIST`,
//! over the in-memory state.
//!
//! Error codes follow the table in docs/kias-api.md: `001` session expired or unknown, `002`
//! wrong user or password, `003` unknown procedure, `1xx` business rule violations.

use super::directory;
use super::state::{kias_now, Confirmation, KiasState, Notification, Receipt, Runtime};
use super::xml::XmlNode;

/// Error inside `data`: a KIAS error code and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KiasError {
    pub code: &'static str,
    pub text: String,
}

impl KiasError {
    fn new(code: &'static str, text: impl Into<String>) -> Self {
        KiasError {
            code,
            text: text.into(),
        }
    }

    fn missing(name: &str) -> Self {
        KiasError::new("100", format!("Не указан обязательный параметр {name}"))
    }
}

/// Result of one procedure: the children of `<result>`, or an error.
pub type Outcome = Result<Vec<XmlNode>, KiasError>;

/// States of an A-7 receipt in KIAS.
const A7_STATUSES: [&str; 4] = ["NEW", "SPENT", "LOST", "BROKEN"];

/// Runs `procedure` with the `params` element of the `pData` request and returns its outcome.
pub fn execute(state: &KiasState, procedure: &str, params: &XmlNode) -> Outcome {
    let mut runtime = state.lock();
    *runtime
        .calls_by_procedure
        .entry(procedure.to_owned())
        .or_insert(0) += 1;

    if procedure == "Auth" {
        return authenticate(state, &mut runtime, params);
    }
    let sid = params.child_text("Sid").unwrap_or_default();
    if !runtime.session_is_live(sid) {
        return Err(KiasError::new(
            "001",
            "Сессия не найдена или истекла, выполните Auth",
        ));
    }

    match procedure {
        "User_NotifyEvent" => notify_event(&mut runtime, params),
        "User_A7Create" => a7_create(&mut runtime, params),
        "User_A7Find" => a7_find(&runtime, params),
        "User_PaymentConfirm" => payment_confirm(&mut runtime, params),
        "User_PaymentFind" => payment_find(&runtime, params),
        "GETDICTILIST" => directory_list(params),
        other => Err(KiasError::new(
            "003",
            format!("Процедура {other} не найдена или недоступна пользователю"),
        )),
    }
}

fn authenticate(state: &KiasState, runtime: &mut Runtime, params: &XmlNode) -> Outcome {
    let user = params.child_text("Name").unwrap_or_default();
    let password_hash = params.child_text("Pwd").unwrap_or_default();
    if !state.credentials_match(user, password_hash) {
        return Err(KiasError::new(
            "002",
            "Неверное имя пользователя или пароль",
        ));
    }
    let sid = runtime.open_session(state.session_lifetime());
    Ok(vec![XmlNode::text("Sid", sid)])
}

fn required<'a>(params: &'a XmlNode, name: &str) -> Result<&'a str, KiasError> {
    params
        .child_text(name)
        .ok_or_else(|| KiasError::missing(name))
}

fn optional(params: &XmlNode, name: &str) -> String {
    params.child_text(name).unwrap_or_default().to_owned()
}

/// Checks a `dd.mm.yyyy` date parameter.
fn date(params: &XmlNode, name: &str) -> Result<String, KiasError> {
    let text = required(params, name)?;
    chrono::NaiveDate::parse_from_str(text, "%d.%m.%Y")
        .ok()
        .filter(|_| text.len() == 10)
        .map(|_| text.to_owned())
        .ok_or_else(|| {
            KiasError::new(
                "100",
                format!("Неверный формат даты {name}: {text}, ожидается ДД.ММ.ГГГГ"),
            )
        })
}

fn isn(params: &XmlNode, name: &str) -> Result<String, KiasError> {
    let text = required(params, name)?;
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    Err(KiasError::new(
        "100",
        format!("Параметр {name} должен быть числом (ISN): {text}"),
    ))
}

fn notify_event(runtime: &mut Runtime, params: &XmlNode) -> Outcome {
    let event = required(params, "EVENT")?.to_owned();
    let echoed: Vec<XmlNode> = params
        .children
        .iter()
        .filter(|param| param.name != "Sid")
        .cloned()
        .collect();

    let isn = runtime.assign_isn();
    let received = kias_now();
    runtime.notifications.push(Notification {
        isn: isn.clone(),
        event: event.clone(),
        params: XmlNode::parent("params", echoed.clone()).to_json(),
        received: received.clone(),
    });

    Ok(vec![
        XmlNode::text("ISN", isn),
        XmlNode::text("EVENT", event),
        XmlNode::text("STATUSNAME", "Уведомление принято"),
        XmlNode::text("RECEIVED", received),
        XmlNode::parent("PARAMS", echoed),
    ])
}

fn receipt_fields(receipt: &Receipt) -> Vec<XmlNode> {
    vec![
        XmlNode::text("ISN", receipt.isn.as_str()),
        XmlNode::text("SERIES", receipt.series.as_str()),
        XmlNode::text("NUMBER", receipt.number.as_str()),
        XmlNode::text("STATUS", receipt.status.as_str()),
        XmlNode::text("STATUSNAME", a7_status_name(&receipt.status)),
        XmlNode::text("AGENTISN", receipt.agent_isn.as_str()),
        XmlNode::text("POLICYISN", receipt.policy_isn.as_str()),
        XmlNode::text("AMOUNT", receipt.amount.as_str()),
        XmlNode::text("PAYER", receipt.payer.as_str()),
        XmlNode::text("DATEPAY", receipt.date_pay.as_str()),
        XmlNode::text("EXTERNALKEY", receipt.external_key.as_str()),
        XmlNode::text("CREATED", receipt.created.as_str()),
    ]
}

fn a7_status_name(status: &str) -> &'static str {
    match status {
        "NEW" => "Выдана агенту",
        "SPENT" => "Использована",
        "LOST" => "Утеряна",
        _ => "Испорчена",
    }
}

fn a7_create(runtime: &mut Runtime, params: &XmlNode) -> Outcome {
    let series = required(params, "SERIES")?.to_owned();
    let number = required(params, "NUMBER")?.to_owned();
    let agent_isn = isn(params, "AGENTISN")?;
    let date_pay = date(params, "DATEPAY")?;
    let status = params.child_text("STATUS").unwrap_or("SPENT").to_owned();
    if !A7_STATUSES.contains(&status.as_str()) {
        return Err(KiasError::new(
            "100",
            format!(
                "Неизвестный статус квитанции {status}: допустимы {}",
                A7_STATUSES.join(", ")
            ),
        ));
    }
    if status == "SPENT" {
        for name in ["POLICYISN", "AMOUNT", "PAYER"] {
            required(params, name)?;
        }
    }
    if runtime
        .receipts
        .iter()
        .any(|receipt| receipt.series == series && receipt.number == number)
    {
        return Err(KiasError::new(
            "101",
            format!("Квитанция А-7 серии {series} № {number} уже зарегистрирована"),
        ));
    }

    let receipt = Receipt {
        isn: runtime.assign_isn(),
        series,
        number,
        status,
        agent_isn,
        policy_isn: optional(params, "POLICYISN"),
        amount: optional(params, "AMOUNT"),
        payer: optional(params, "PAYER"),
        date_pay,
        external_key: optional(params, "EXTERNALKEY"),
        created: kias_now(),
    };
    let fields = receipt_fields(&receipt);
    runtime.receipts.push(receipt);
    Ok(fields)
}

fn a7_find(runtime: &Runtime, params: &XmlNode) -> Outcome {
    let series = params.child_text("SERIES");
    let number = params.child_text("NUMBER");
    let external_key = params.child_text("EXTERNALKEY");
    if external_key.is_none() && (series.is_none() || number.is_none()) {
        return Err(KiasError::new(
            "100",
            "Укажите SERIES и NUMBER или EXTERNALKEY",
        ));
    }

    let rows = runtime
        .receipts
        .iter()
        .filter(|receipt| series.is_none() || series == Some(receipt.series.as_str()))
        .filter(|receipt| number.is_none() || number == Some(receipt.number.as_str()))
        .filter(|receipt| {
            external_key.is_none() || external_key == Some(receipt.external_key.as_str())
        })
        .map(receipt_fields)
        .collect();
    Ok(vec![XmlNode::rowset(rows)])
}

/// Checks whether a payment ISN is a "not found" marker: one ending in `000`.
fn payment_is_unknown(payment_isn: &str) -> bool {
    payment_isn.ends_with("000")
}

fn confirmation_fields(confirmation: &Confirmation) -> Vec<XmlNode> {
    vec![
        XmlNode::text("ISN", confirmation.payment_isn.as_str()),
        XmlNode::text("STATUS", "CONFIRMED"),
        XmlNode::text("AMOUNT", confirmation.amount.as_str()),
        XmlNode::text("DATEPAY", confirmation.date_pay.as_str()),
        XmlNode::text("POLICYISN", confirmation.policy_isn.as_str()),
        XmlNode::text("DOCNO", confirmation.document.as_str()),
        XmlNode::text("EXTERNALKEY", confirmation.external_key.as_str()),
        XmlNode::text("CONFIRMED", confirmation.confirmed.as_str()),
    ]
}

fn payment_confirm(runtime: &mut Runtime, params: &XmlNode) -> Outcome {
    let payment_isn = isn(params, "PAYMENTISN")?;
    let amount = required(params, "AMOUNT")?.to_owned();
    let date_pay = date(params, "DATEPAY")?;
    if payment_is_unknown(&payment_isn) {
        return Err(KiasError::new(
            "102",
            format!("Платёж {payment_isn} не найден"),
        ));
    }
    if runtime.confirmations.contains_key(&payment_isn) {
        return Err(KiasError::new(
            "103",
            format!("Платёж {payment_isn} уже подтверждён"),
        ));
    }

    let confirmation = Confirmation {
        payment_isn: payment_isn.clone(),
        amount,
        date_pay,
        policy_isn: optional(params, "POLICYISN"),
        document: optional(params, "DOCNO"),
        external_key: optional(params, "EXTERNALKEY"),
        confirmed: kias_now(),
    };
    let fields = confirmation_fields(&confirmation);
    runtime.confirmations.insert(payment_isn, confirmation);
    Ok(fields)
}

fn payment_find(runtime: &Runtime, params: &XmlNode) -> Outcome {
    let payment_isn = isn(params, "PAYMENTISN")?;

    let rows = match runtime.confirmations.get(&payment_isn) {
        Some(confirmation) => vec![confirmation_fields(confirmation)],
        None if payment_is_unknown(&payment_isn) => Vec::new(),
        None => vec![vec![
            XmlNode::text("ISN", payment_isn.as_str()),
            XmlNode::text("STATUS", "NEW"),
            XmlNode::text("EXTERNALKEY", ""),
        ]],
    };
    Ok(vec![XmlNode::rowset(rows)])
}

fn directory_list(params: &XmlNode) -> Outcome {
    let text = isn(params, "DictiISN")?;
    let dicti_isn = text
        .parse::<u64>()
        .ok()
        .filter(|isn| directory::is_known(*isn))
        .ok_or_else(|| KiasError::new("104", format!("Справочник {text} не найден")))?;

    let rows = directory::children(dicti_isn)
        .into_iter()
        .map(|(entry, child_count)| {
            vec![
                XmlNode::text("ISN", entry.isn.to_string()),
                XmlNode::text("PARENTISN", entry.parent_isn.to_string()),
                XmlNode::text("CODE", entry.code.as_str()),
                XmlNode::text("SHORTNAME", entry.short_name.as_str()),
                XmlNode::text("FULLNAME", entry.full_name.as_str()),
                XmlNode::text("N_CHILDREN", child_count.to_string()),
            ]
        })
        .collect();
    Ok(vec![XmlNode::rowset(rows)])
}
