"""django-oauth-toolkit (https://github.com/jazzband/django-oauth-toolkit, an RFC 8628 server
nobody on this project wrote) for `cargo test --test interop`.

    python serve.py [PORT] [--exit-with-stdin]

Listens on 127.0.0.1:PORT (0 or absent: any free port), sets up a fresh database, and prints one
JSON line on stdout: {"origin": "http://127.0.0.1:PORT", "port": PORT}. With --exit-with-stdin
it exits when its stdin closes, so it cannot outlive a test that was killed.

The server is django-oauth-toolkit's own views and URLs, mounted at /o/ as its documentation
does: /o/device-authorization/, /o/device/, /o/token/, /o/revoke_token/, its RFC 8414 and
OpenID metadata, with OpenID Connect on. Accounts (password "interop-password"): ada, grace.
Clients (device code grant, which may refresh):
  zoho-device-public        public
  zoho-device-confidential  confidential, secret "interop-secret"

Environment: DEVICE_CODE_TTL (seconds, default 1800): the lifetime of device codes.
oauthlib's pre-configured device server always says 1800 s and has no setting for it; a test
of expiry cannot wait half an hour, so this script sets the server's lifetime after oauthlib
built it (the value it sends as `expires_in` and the one django-oauth-toolkit stores).
"""

import json
import os
import socketserver
import sys
import tempfile
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PASSWORD = "interop-password"


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (wsgiref's name)
        sys.stderr.write("%s\n" % (format % args))


def rsa_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def setup_data():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model()
    for name in ("ada", "grace"):
        users.objects.create_user(name, password=PASSWORD)
    apps = get_application_model()
    device = apps.GRANT_DEVICE_CODE
    apps.objects.create(
        name="zoho-device (public)",
        client_id="zoho-device-public",
        client_type=apps.CLIENT_PUBLIC,
        authorization_grant_type=device,
    )
    apps.objects.create(
        name="zoho-device (confidential)",
        client_id="zoho-device-confidential",
        client_secret="interop-secret",
        client_type=apps.CLIENT_CONFIDENTIAL,
        authorization_grant_type=device,
    )


def set_code_lifetime(seconds):
    from oauthlib.oauth2 import DeviceApplicationServer

    built = DeviceApplicationServer.__init__

    def init(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self._expires_in = seconds

    DeviceApplicationServer.__init__ = init


def main():
    args = sys.argv[1:]
    port = next((int(a) for a in args if a.isdigit()), 0)
    app = {}

    def wsgi(environ, start_response):
        return app["django"](environ, start_response)

    server = make_server("127.0.0.1", port, wsgi, server_class=Server, handler_class=QuietHandler)
    origin = f"http://127.0.0.1:{server.server_port}"
    # The test gives a directory it removes itself (it kills this process); else a fresh one.
    data = os.environ.get("DOT_DATA_DIR") or tempfile.mkdtemp(prefix="dot-interop-")
    os.environ["DOT_ORIGIN"] = origin
    os.environ["DOT_DATABASE"] = os.path.join(data, "db.sqlite3")
    os.environ["DOT_RSA_KEY"] = rsa_key()
    os.environ["DJANGO_SETTINGS_MODULE"] = "interop_site.settings"

    set_code_lifetime(int(os.environ.get("DEVICE_CODE_TTL", "1800")))
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    setup_data()
    app["django"] = get_wsgi_application()

    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"origin": origin, "port": server.server_port}), flush=True)
    if "--exit-with-stdin" in args:
        sys.stdin.read()
    else:
        threading.Event().wait()


if __name__ == "__main__":
    main()
