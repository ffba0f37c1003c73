#!/usr/bin/env python3
"""The usual script: Zoho's OAuth device flow with `requests`, as a Zoho user writes it.

This is the baseline the benchmark compares `zoho-device` with. It does the same Zoho flow
(device code, poll every `interval` until approved, save the token; print a token, refreshing
it within 5 minutes of expiry; a refresh loop as a long-running "agent") and nothing more: no
displays, no lock, no retries. The only additions are the JSON event lines on stdout
(`{"event": "code", ...}`, `{"event": "authorized"}`) so the benchmark can time it exactly as it
times `zoho-device login --events json`.

    ZOHO_ACCOUNTS_URL=http://127.0.0.1:PORT ZOHO_CLIENT_ID=... ZOHO_CLIENT_SECRET=... \
    ZOHO_TOKEN_FILE=token.json python3 baseline.py login|token|agent
"""

import json
import os
import sys
import time

import requests

ACCOUNTS = os.environ.get("ZOHO_ACCOUNTS_URL", "https://accounts.zoho.com").rstrip("/")
CLIENT_ID = os.environ["ZOHO_CLIENT_ID"]
CLIENT_SECRET = os.environ["ZOHO_CLIENT_SECRET"]
SCOPE = os.environ.get("ZOHO_SCOPE", "ZohoBooks.settings.READ")
TOKEN_FILE = os.environ.get("ZOHO_TOKEN_FILE", "token.json")


def event(name, **fields):
    print(json.dumps({"event": name, **fields}), flush=True)


def save(tokens):
    tmp = TOKEN_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(tokens, f)
    os.replace(tmp, TOKEN_FILE)


def login():
    r = requests.post(
        f"{ACCOUNTS}/oauth/v3/device/code",
        data={
            "client_id": CLIENT_ID,
            "scope": SCOPE,
            "grant_type": "device_request",
            "access_type": "offline",
            "prompt": "consent",
        },
        timeout=30,
    )
    code = r.json()
    if "device_code" not in code:
        print("error:", code, file=sys.stderr)
        return 1
    event("code", user_code=code["user_code"], verification_url=code["verification_url"])
    interval = code["interval"] / 1000  # Zoho: milliseconds
    deadline = time.time() + code["expires_in"] / 1000
    while time.time() < deadline:
        time.sleep(interval)
        r = requests.post(
            f"{ACCOUNTS}/oauth/v3/device/token",
            data={
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_type": "device_token",
                "code": code["device_code"],
            },
            timeout=30,
        )
        t = r.json()
        if "access_token" in t:
            t["accounts_url"] = ACCOUNTS
            t["expires_at"] = time.time() + t["expires_in"]
            save(t)
            event("authorized")
            return 0
        err = t.get("error")
        if err == "authorization_pending":
            event("pending")
        elif err == "slow_down":
            interval += 5
            event("slow_down")
        else:
            print("error:", err, file=sys.stderr)
            return 1
    print("error: the code expired", file=sys.stderr)
    return 4


def refresh(tokens):
    r = requests.post(
        f"{tokens['accounts_url']}/oauth/v2/token",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
        },
        timeout=30,
    )
    fresh = r.json()
    tokens["access_token"] = fresh["access_token"]
    tokens["expires_at"] = time.time() + fresh["expires_in"]
    save(tokens)
    return tokens


def token():
    with open(TOKEN_FILE) as f:
        tokens = json.load(f)
    if tokens["expires_at"] - time.time() < 300:
        tokens = refresh(tokens)
    print(tokens["access_token"])
    return 0


def agent():
    while True:
        with open(TOKEN_FILE) as f:
            tokens = json.load(f)
        wait = tokens["expires_at"] - time.time() - min(600, tokens["expires_in"] / 4)
        if wait > 0:
            time.sleep(wait)
        refresh(tokens)
        event("refreshed")


if __name__ == "__main__":
    commands = {"login": login, "token": token, "agent": agent}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print("usage: baseline.py login|token|agent", file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())
