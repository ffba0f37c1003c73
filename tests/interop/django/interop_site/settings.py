"""Settings of the django-oauth-toolkit server for `cargo test --test interop` (see serve.py).

Everything the test relies on is django-oauth-toolkit's own behaviour; the settings only say
where the server lives, which scopes it knows, and how fast its device flow runs.
"""

import os
import secrets

ISSUER = os.environ["DOT_ORIGIN"]  # http://127.0.0.1:PORT, set by serve.py once bound

SECRET_KEY = secrets.token_urlsafe(40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "interop_site.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "interop_site",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    # APPEND_SLASH: a POST to /o/token (no slash) is answered 301 → /o/token/, as in production.
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DOT_DATABASE"],
    }
}

LOGIN_URL = "/accounts/login/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "WARNING"},
        "oauth2_provider": {"handlers": ["stderr"], "level": "INFO"},
    },
}

OAUTH2_PROVIDER = {
    "OAUTH_DEVICE_VERIFICATION_URI": f"{ISSUER}/o/device/",
    "OAUTH_DEVICE_VERIFICATION_URI_COMPLETE": f"{ISSUER}/o/device/?user_code={{user_code}}",
    # Seconds between polls: 1 instead of 5 keeps the suite quick.
    "DEVICE_FLOW_INTERVAL": 1,
    # No offline_access: a plain OAuth server (it issues refresh tokens without being asked).
    "SCOPES": {"openid": "OpenID Connect", "read": "Read your profile"},
    "DEFAULT_SCOPES": ["read"],
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": os.environ["DOT_RSA_KEY"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "ROTATE_REFRESH_TOKEN": True,
}
