#!/usr/bin/env python3
"""Sign UIG requests with signature version 1 and optionally send them (Python 3 standard library only).

Print the hash of the built-in test vector:
    python3 sign.py --vector

Print the hash for a request:
    python3 sign.py --token T --secret S POST /async/message/send recipient=avinfo timestamp=...

Send a signed form-encoded request, adding `timestamp` as RFC 3339 now when absent:
    python3 sign.py --url http://127.0.0.1:8080 --token T --secret S \\
        POST /async/message/send recipient=avinfo entity=vehicle 'message={"vin":"..."}'
"""

import argparse
import datetime
import hashlib
import hmac
import sys
import urllib.error
import urllib.parse
import urllib.request

# Parameters that never enter the canonical string.
UNSIGNED_PARAMETERS = ("hash", "token")

VECTOR_SECRET = "secret-demo"
VECTOR_TOKEN = "tok-demo"
VECTOR_METHOD = "POST"
VECTOR_PATH = "/async/message/send"
VECTOR_PARAMETERS = [
    ("timestamp", "2026-12-04T12:00:00+03:00"),
    ("recipient", "avinfo"),
    ("entity", "vehicle"),
    ("message", '{"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}'),
]
VECTOR_HASH = "4109d4839532cf0163ee877a5a61601720cbd31e0409c3dd4e32d8c23a9aa0f0"


def encode(text):
    """Percent-encode the UTF-8 bytes of text as RFC 3986 does: only A-Z a-z 0-9 - . _ ~ stay."""
    return urllib.parse.quote(text, safe="-._~")


def canonical_parameters(parameters):
    """Build enc(name)=enc(value) pairs without hash and token, sorted by encoded name, joined by &."""
    encoded = [
        (encode(name), encode(value))
        for name, value in parameters
        if name not in UNSIGNED_PARAMETERS
    ]
    encoded.sort()
    return "&".join(f"{name}={value}" for name, value in encoded)


def string_to_sign(method, path, parameters, token):
    """Build METHOD, PATH, the canonical parameters and the token, joined by newlines."""
    return "\n".join([method, path, canonical_parameters(parameters), token])


def sign(secret, text):
    """Return the lower-case hex HMAC-SHA256 of text keyed with secret."""
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_parameter(argument):
    """Split a name=value argument at the first '='."""
    name, separator, value = argument.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f'invalid parameter "{argument}": expected name=value')
    return name, value


def send(url, method, path, parameters):
    """Send parameters form-encoded to url + path and return the HTTP status and body text."""
    body = urllib.parse.urlencode(parameters).encode("ascii")
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=body,
        method=method,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def build_argument_parser():
    parser = argparse.ArgumentParser(
        description="Compute the signature version 1 hash of a UIG request, or send the signed request."
    )
    parser.add_argument("--vector", action="store_true", help="print the hash of the built-in test vector and exit")
    parser.add_argument("--url", help="server base URL such as http://127.0.0.1:8080. Without it, the script prints only the hash")
    parser.add_argument("--token", help="client token, sent as the token parameter")
    parser.add_argument("--secret", help="client secret, the HMAC key")
    parser.add_argument("--verbose", action="store_true", help="print the string to sign to standard error")
    parser.add_argument("method", nargs="?", help="HTTP method, for example POST")
    parser.add_argument("path", nargs="?", help="request path without the query string, for example /async/message/send")
    parser.add_argument("parameters", nargs="*", type=parse_parameter, help="request parameters as name=value")
    return parser


def main():
    parser = build_argument_parser()
    arguments = parser.parse_args()

    if arguments.vector:
        text = string_to_sign(VECTOR_METHOD, VECTOR_PATH, VECTOR_PARAMETERS, VECTOR_TOKEN)
        hash_value = sign(VECTOR_SECRET, text)
        print(hash_value)
        if hash_value != VECTOR_HASH:
            print(f"hash differs from the expected {VECTOR_HASH}", file=sys.stderr)
            return 1
        return 0

    missing = [name for name in ("token", "secret", "method", "path") if getattr(arguments, name) is None]
    if missing:
        parser.error("missing " + ", ".join(missing) + ": pass --token, --secret, the method and the path")

    unsigned = [name for name, _ in arguments.parameters if name in UNSIGNED_PARAMETERS]
    if unsigned:
        parser.error(f'invalid parameter "{unsigned[0]}": pass the token with --token and leave the hash to the script')

    method = arguments.method.upper()
    parameters = list(arguments.parameters)
    if arguments.url and not any(name == "timestamp" for name, _ in parameters):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        parameters.append(("timestamp", now))

    text = string_to_sign(method, arguments.path, parameters, arguments.token)
    if arguments.verbose:
        print(text, file=sys.stderr)
    hash_value = sign(arguments.secret, text)

    if not arguments.url:
        print(hash_value)
        return 0

    signed = parameters + [("token", arguments.token), ("hash", hash_value)]
    try:
        status, body = send(arguments.url, method, arguments.path, signed)
    except urllib.error.URLError as error:
        print(f"request to {arguments.url} failed: {error.reason}", file=sys.stderr)
        return 2
    print(status)
    print(body)
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
