<?php
// Signs UIG requests with signature version 1 and optionally sends them (plain PHP, no Composer).
//
// Print the hash of the built-in test vector:
//     php sign.php --vector
//
// Print the hash for a request:
//     php sign.php --token T --secret S POST /async/message/send recipient=avinfo timestamp=...
//
// Send a signed form-encoded request, adding `timestamp` as RFC 3339 now when absent:
//     php sign.php --url http://127.0.0.1:8080 --token T --secret S \
//         POST /async/message/send recipient=avinfo entity=vehicle 'message={"vin":"..."}'
//
// The request goes through the curl extension when it is loaded, otherwise through
// file_get_contents with an HTTP stream context.

const UNSIGNED_PARAMETERS = ['hash', 'token'];

const VECTOR_SECRET = 'secret-demo';
const VECTOR_TOKEN = 'tok-demo';
const VECTOR_METHOD = 'POST';
const VECTOR_PATH = '/async/message/send';
const VECTOR_PARAMETERS = [
    ['timestamp', '2026-12-04T12:00:00+03:00'],
    ['recipient', 'avinfo'],
    ['entity', 'vehicle'],
    ['message', '{"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}'],
];
const VECTOR_HASH = '4109d4839532cf0163ee877a5a61601720cbd31e0409c3dd4e32d8c23a9aa0f0';

/**
 * Builds enc(name)=enc(value) pairs without hash and token, sorted by encoded name and joined by &.
 * rawurlencode() is RFC 3986 percent-encoding with upper-case hex: only A-Z a-z 0-9 - . _ ~ stay.
 *
 * @param array<int, array{0: string, 1: string}> $parameters name and value pairs
 */
function canonical_parameters(array $parameters): string
{
    $encoded = [];
    foreach ($parameters as [$name, $value]) {
        if (in_array($name, UNSIGNED_PARAMETERS, true)) {
            continue;
        }
        $encoded[] = [rawurlencode($name), rawurlencode($value)];
    }

    usort($encoded, function (array $left, array $right): int {
        return strcmp($left[0], $right[0]) ?: strcmp($left[1], $right[1]);
    });

    $pairs = array_map(fn (array $pair): string => $pair[0] . '=' . $pair[1], $encoded);
    return implode('&', $pairs);
}

/** Builds METHOD, PATH, the canonical parameters and the token, joined by newlines. */
function string_to_sign(string $method, string $path, array $parameters, string $token): string
{
    return implode("\n", [$method, $path, canonical_parameters($parameters), $token]);
}

/** Returns the lower-case hex HMAC-SHA256 of $text keyed with $secret. */
function sign(string $secret, string $text): string
{
    return hash_hmac('sha256', $text, $secret);
}

/**
 * Sends the parameters form-encoded to $url . $path.
 *
 * @return array{0: int, 1: string} HTTP status and response body
 */
function send(string $url, string $method, string $path, array $parameters): array
{
    $fields = [];
    foreach ($parameters as [$name, $value]) {
        $fields[] = rawurlencode($name) . '=' . rawurlencode($value);
    }
    $body = implode('&', $fields);
    $target = rtrim($url, '/') . $path;
    $contentType = 'Content-Type: application/x-www-form-urlencoded';

    if (function_exists('curl_init')) {
        $handle = curl_init($target);
        curl_setopt_array($handle, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => [$contentType],
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 30,
        ]);
        $response = curl_exec($handle);
        if ($response === false) {
            throw new RuntimeException("request to $target failed: " . curl_error($handle));
        }
        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
        curl_close($handle);
        return [$status, $response];
    }

    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => $contentType,
        'content' => $body,
        'timeout' => 30,
        // Return the body of 4xx and 5xx responses instead of failing.
        'ignore_errors' => true,
    ]]);
    $response = @file_get_contents($target, false, $context);
    if ($response === false) {
        $error = error_get_last();
        throw new RuntimeException("request to $target failed: " . ($error['message'] ?? 'unknown error'));
    }

    // $http_response_header is set by file_get_contents. Its first line is the status line.
    preg_match('#^HTTP/\S+\s+(\d{3})#', $http_response_header[0] ?? '', $match);
    $status = (int) ($match[1] ?? 0);
    return [$status, $response];
}

function usage(string $error): int
{
    fwrite(STDERR, "error: $error\n");
    fwrite(STDERR, "usage: php sign.php --vector\n");
    fwrite(STDERR, "       php sign.php [--url URL] --token TOKEN --secret SECRET [--verbose] METHOD PATH [name=value ...]\n");
    return 2;
}

function main(array $argv): int
{
    $options = ['url' => null, 'token' => null, 'secret' => null];
    $vector = false;
    $verbose = false;
    $positional = [];

    for ($index = 1; $index < count($argv); $index++) {
        $argument = $argv[$index];
        if ($argument === '--vector') {
            $vector = true;
        } elseif ($argument === '--verbose') {
            $verbose = true;
        } elseif (in_array($argument, ['--url', '--token', '--secret'], true)) {
            if ($index + 1 >= count($argv)) {
                return usage("missing value for $argument");
            }
            $options[substr($argument, 2)] = $argv[++$index];
        } else {
            $positional[] = $argument;
        }
    }

    if ($vector) {
        $hash = sign(VECTOR_SECRET, string_to_sign(VECTOR_METHOD, VECTOR_PATH, VECTOR_PARAMETERS, VECTOR_TOKEN));
        echo $hash, "\n";
        if ($hash !== VECTOR_HASH) {
            fwrite(STDERR, 'hash differs from the expected ' . VECTOR_HASH . "\n");
            return 1;
        }
        return 0;
    }

    if ($options['token'] === null || $options['secret'] === null || count($positional) < 2) {
        return usage('missing --token, --secret, the method or the path');
    }

    $method = strtoupper($positional[0]);
    $path = $positional[1];
    $parameters = [];
    foreach (array_slice($positional, 2) as $argument) {
        $separator = strpos($argument, '=');
        if ($separator === false) {
            return usage("invalid parameter \"$argument\": expected name=value");
        }
        $name = substr($argument, 0, $separator);
        if (in_array($name, UNSIGNED_PARAMETERS, true)) {
            return usage("invalid parameter \"$name\": pass the token with --token and leave the hash to the script");
        }
        $parameters[] = [$name, substr($argument, $separator + 1)];
    }

    $hasTimestamp = in_array('timestamp', array_column($parameters, 0), true);
    if ($options['url'] !== null && !$hasTimestamp) {
        $now = new DateTimeImmutable('now', new DateTimeZone('UTC'));
        $parameters[] = ['timestamp', $now->format(DATE_RFC3339)];
    }

    $text = string_to_sign($method, $path, $parameters, $options['token']);
    if ($verbose) {
        fwrite(STDERR, $text . "\n");
    }
    $hash = sign($options['secret'], $text);

    if ($options['url'] === null) {
        echo $hash, "\n";
        return 0;
    }

    $signed = array_merge($parameters, [['token', $options['token']], ['hash', $hash]]);
    try {
        [$status, $body] = send($options['url'], $method, $path, $signed);
    } catch (RuntimeException $error) {
        fwrite(STDERR, $error->getMessage() . "\n");
        return 2;
    }
    echo $status, "\n", $body, "\n";
    return ($status >= 200 && $status < 300) ? 0 : 1;
}

exit(main($argv));
