"""Schemathesis hooks that sign every generated UIG request with signature version 1.

The gateway checks the signature before any handler runs, so unsigned cases would only ever reach
the 401 path. `before_call` therefore serializes the query and the body itself, so that the values
it signs are exactly the values the gateway decodes, then adds a fresh `timestamp`, the token and
the `hash`. The canonical string and the HMAC come from `examples/clients/sign.py`.

Environment: UIG_SCHEMATHESIS_TOKEN and UIG_SCHEMATHESIS_SECRET (a client from
`uig client add --json`), UIG_SCHEMATHESIS_MOCK_URL (the running `uig-mock`).
"""

import datetime
import importlib.util
import json
import os
import pathlib
import urllib.parse
import zlib

import schemathesis

ROOT = pathlib.Path(__file__).resolve().parents[2]

TOKEN = os.environ["UIG_SCHEMATHESIS_TOKEN"]
SECRET = os.environ["UIG_SCHEMATHESIS_SECRET"]
MOCK_URL = os.environ["UIG_SCHEMATHESIS_MOCK_URL"]

# Endpoints that take no signature.
UNSIGNED_PATHS = {"/health/live", "/health/ready", "/openapi.json"}
# Parameters the hook sets itself. Generated values for them are dropped.
AUTH_PARAMETERS = {"timestamp", "token", "hash"}

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# Connectors that run.sh configures, with the entities each declares.
CONNECTOR_ENTITIES = {
    "avinfo": ["vehicle"],
    "testkit": ["echo", "fail", "panic", "sleep", "pending", "fetch", "post"],
}
SEND_PATHS = {"/async/message/send", "/sync/message/send"}

# Testkit entities whose payload names a URL the plugin calls, or a time it sleeps. Their generated
# payloads are replaced, so the plugin calls only the mock and sleeps for 50 ms.
TESTKIT_PAYLOADS = {
    "fetch": json.dumps({"url": f"{MOCK_URL}/_mock/stats"}),
    "post": json.dumps({"url": f"{MOCK_URL}/_mock/stats"}),
    "sleep": json.dumps({"ms": 50}),
}


def load_signing_module():
    """Import `examples/clients/sign.py`, which is a script and not a package."""
    path = ROOT / "examples" / "clients" / "sign.py"
    spec = importlib.util.spec_from_file_location("uig_client_sign", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIGNING = load_signing_module()


def wire_text(value):
    """Return the text of a generated scalar as the gateway decodes it from a query or form."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def pairs_of(mapping):
    """Turn generated query or form values into (name, text) pairs in order.

    A list becomes one pair per item, which the gateway rejects as a repeated parameter, and
    None drops the name, as `requests` does.
    """
    pairs = []
    for name, value in mapping.items():
        if name in AUTH_PARAMETERS or value is None:
            continue
        if isinstance(value, list):
            pairs.extend((name, wire_text(item)) for item in value if item is not None)
        else:
            pairs.append((name, wire_text(value)))
    return pairs


def json_member(name, value):
    """Return a JSON body member as (name, parameter value, JSON text). The gateway takes a string
    member as its string and any other member as its raw JSON text."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        # Lone surrogates have no UTF-8 form. Escaped as \uD800, they make the gateway reject the body.
        text = json.dumps(value)
    return name, (value if isinstance(value, str) else text), text


def text_member(name, value):
    """Return a member whose value is a plain string, for both the form and the JSON body."""
    return name, value, json.dumps(value, ensure_ascii=False)


def replace_testkit_payload(members, values):
    """Swap the payload of a testkit fetch, post or sleep for a harmless one. `values` contains the
    parameters of the whole request, query and body."""
    replacement = TESTKIT_PAYLOADS.get(values.get("entity")) if values.get("recipient") == "testkit" else None
    if replacement is None:
        return members
    return [text_member(name, replacement) if name == "message" else (name, value, text) for name, value, text in members]


def pick(text, choices):
    """Choose from choices by a stable hash of text, so a case keeps its choice when replayed."""
    return choices[zlib.crc32(text.encode("utf-8", errors="surrogatepass")) % len(choices)]


def steer_send(members, values):
    """Point most sends at a configured connector, one of its entities and an allowed callback.

    Random text is almost never a connector name or an allowed callback URL, so unsteered sends
    would nearly all stop at 422. A third of the generated values are kept to test that path.
    `values` contains the parameters of the whole request, query and body.
    """
    recipient = values.get("recipient")
    if isinstance(recipient, str) and recipient not in CONNECTOR_ENTITIES:
        recipient = pick(recipient, [recipient, "avinfo", "testkit"])
    entity = values.get("entity")
    entities = CONNECTOR_ENTITIES.get(recipient)
    if entities and isinstance(entity, str) and entity not in entities:
        entity = pick(entity, [entity, *entities, *entities])

    callback = values.get("callback")
    if isinstance(callback, str) and callback:
        callback = pick(callback, [callback, f"{MOCK_URL}/_mock/callbacks", ""])

    steered = {"recipient": recipient, "entity": entity, "callback": callback}
    return [
        text_member(name, steered[name]) if name in steered and steered[name] != value else (name, value, text)
        for name, value, text in members
    ]


def choose_timestamp(case):
    """Return the current time, or for one case in eight the generated timestamp, which tests the
    gateway's timestamp parsing and replay window."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sources = [case.query or {}, case.body if isinstance(case.body, dict) else {}]
    generated = next((source["timestamp"] for source in sources if "timestamp" in source), None)
    # The salt keeps frequent values such as "" (whose CRC-32 is 0) from always being chosen.
    if isinstance(generated, str) and pick(f"timestamp:{generated}", range(8)) == 0:
        return generated
    return now


def has_bearer_header(case):
    return any(name.lower() == "authorization" for name in (case.headers or {}))


def sign_members(method, path, members):
    """Return the hash of the parameters, or a placeholder when a value cannot be UTF-8 encoded
    (the gateway then rejects the request before it checks the signature)."""
    pairs = [(name, value) for name, value, _ in members]
    try:
        text = SIGNING.string_to_sign(method, path, pairs, TOKEN)
        return SIGNING.sign(SECRET, text)
    except UnicodeEncodeError:
        return "0" * 64


def form_bytes(members):
    pairs = [(name, value) for name, value, _ in members]
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, errors="surrogatepass").encode("ascii")


def json_bytes(members):
    text = ", ".join(f"{json.dumps(name, ensure_ascii=False)}: {value_text}" for name, _, value_text in members)
    return ("{" + text + "}").encode("utf-8", errors="surrogatepass")


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path in UNSIGNED_PATHS:
        return

    query = [text_member(name, value) for name, value in pairs_of(case.query or {})]
    body_is_object = isinstance(case.body, dict) and case.media_type in (FORM, JSON)
    body = []
    if body_is_object and case.media_type == FORM:
        body = [text_member(name, value) for name, value in pairs_of(case.body)]
    elif body_is_object:
        body = [json_member(name, value) for name, value in case.body.items() if name not in AUTH_PARAMETERS]
    if case.path in SEND_PATHS:
        values = {name: value for name, value, _ in query + body}
        query, body = steer_send(query, values), steer_send(body, values)
    values = {name: value for name, value, _ in query + body}
    query, body = replace_testkit_payload(query, values), replace_testkit_payload(body, values)

    # Real clients put the signature parameters beside the others: in the body when there is one.
    signed = body if body_is_object else query
    signed.append(text_member("timestamp", choose_timestamp(case)))
    hash_value = sign_members(case.method.upper(), case.path, query + body)
    if has_bearer_header(case):
        for name in [name for name in case.headers if name.lower() == "authorization"]:
            del case.headers[name]
        case.headers["Authorization"] = f"Bearer {TOKEN}"
    else:
        signed.append(text_member("token", TOKEN))
    signed.append(text_member("hash", hash_value))

    # A name with several values is sent once per value, which the gateway rejects as repeated.
    grouped = {}
    for name, value, _ in query:
        grouped.setdefault(name, []).append(value)
    case.query = {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}

    if body_is_object:
        case.body = form_bytes(body) if case.media_type == FORM else json_bytes(body)
